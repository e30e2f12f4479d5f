"""Billing periods from an anchor, in unix seconds (UTC).

Boundary ``n`` is ``anchor + n * interval``, always computed from the anchor and never by adding to
the previous boundary, so a short month does not shorten every later period: an anchor on Jan 31
renews Feb 28 (Feb 29 in leap years), Mar 31, Apr 30. Month and year steps clamp the day to the
target month's last day; the anchor's time of day is kept. Day and week steps are exact multiples of
86 400 seconds (UTC has no daylight saving).

Limit: an interval may total at most 3 years (1095 days, 156 weeks, 36 months or 3 years), three
times Stripe's one-year maximum, which leaves room without inviting absurd plans.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY = 86_400
INTERVAL_SECONDS: dict[str, int] = {"day": DAY, "week": 7 * DAY}
INTERVAL_MONTHS: dict[str, int] = {"month": 1, "year": 12}
MAX_INTERVAL_COUNT: dict[str, int] = {"day": 1095, "week": 156, "month": 36, "year": 3}
INTERVALS: tuple[str, ...] = tuple(MAX_INTERVAL_COUNT)


def validate_interval(interval: str, count: int) -> None:
    """Raise ValueError unless ``count`` * ``interval`` is a supported billing interval."""
    if interval not in MAX_INTERVAL_COUNT:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}; got {interval!r}")
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"interval_count must be an integer, got {count!r}")
    limit = MAX_INTERVAL_COUNT[interval]
    if not 1 <= count <= limit:
        raise ValueError(f"interval_count for {interval} must be between 1 and {limit} (at most 3 years), got {count}")


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _add_months(anchor: int, months: int) -> int:
    """Anchor plus ``months`` calendar months, the day clamped to the target month's length."""
    start = _utc(anchor)
    year, month0 = divmod(start.year * 12 + start.month - 1 + months, 12)
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    time_of_day = anchor % DAY
    return calendar.timegm((year, month0 + 1, day, 0, 0, 0)) + time_of_day


def add_interval(anchor: int, interval: str, count: int, n: int) -> int:
    """Boundary ``n`` (``n >= 0``; boundary 0 is the anchor itself)."""
    validate_interval(interval, count)
    if n < 0:
        raise ValueError(f"boundary index must not be negative, got {n}")
    if interval in INTERVAL_SECONDS:
        return anchor + n * count * INTERVAL_SECONDS[interval]
    return _add_months(anchor, n * count * INTERVAL_MONTHS[interval])


def _estimate_index(anchor: int, interval: str, count: int, at: int) -> int:
    """A guess at the index of the period containing ``at``, exact or one too high."""
    if interval in INTERVAL_SECONDS:
        return (at - anchor) // (count * INTERVAL_SECONDS[interval])
    start, now = _utc(anchor), _utc(at)
    months = (now.year - start.year) * 12 + now.month - start.month
    return months // (count * INTERVAL_MONTHS[interval])


def period_containing(anchor: int, interval: str, count: int, at: int) -> tuple[int, int]:
    """The (start, end) of the period with ``start <= at < end``; ``at`` must not precede the anchor.

    The index is estimated arithmetically and then corrected by a step or two, so the cost does not
    grow with the number of periods since the anchor.
    """
    validate_interval(interval, count)
    if at < anchor:
        raise ValueError(f"time {at} is before the billing anchor {anchor}")
    n = max(_estimate_index(anchor, interval, count, at), 0)
    # Each boundary is computed once (a month's is a calendar computation): start, then end.
    start = add_interval(anchor, interval, count, n)
    while start > at:
        n -= 1
        start = add_interval(anchor, interval, count, n)
    end = add_interval(anchor, interval, count, n + 1)
    while end <= at:
        n += 1
        start, end = end, add_interval(anchor, interval, count, n + 1)
    return start, end


def next_boundary(anchor: int, interval: str, count: int, after: int) -> int:
    """The first boundary strictly after ``after`` (the anchor itself if ``after`` precedes it)."""
    validate_interval(interval, count)
    if after < anchor:
        return anchor
    return period_containing(anchor, interval, count, after)[1]

"""Billing periods: anchor arithmetic, month-end clamping and period lookup."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.billing.periods import (
    MAX_INTERVAL_COUNT,
    add_interval,
    next_boundary,
    period_containing,
    validate_interval,
)

FAST = settings(max_examples=300, deadline=None)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second))


def dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def boundaries(anchor: int, interval: str, count: int, n: int) -> list[tuple[int, int, int]]:
    return [dt(add_interval(anchor, interval, count, i)).timetuple()[:3] for i in range(n)]


# --- examples --------------------------------------------------------------------------------


def test_jan_31_monthly_2027() -> None:
    anchor = ts(2027, 1, 31, 9, 30, 15)
    assert boundaries(anchor, "month", 1, 5) == [
        (2027, 1, 31), (2027, 2, 28), (2027, 3, 31), (2027, 4, 30), (2027, 5, 31),
    ]  # fmt: skip
    assert dt(add_interval(anchor, "month", 1, 2)).time().isoformat() == "09:30:15"


def test_jan_31_monthly_leap_2028() -> None:
    anchor = ts(2028, 1, 31)
    assert boundaries(anchor, "month", 1, 4) == [(2028, 1, 31), (2028, 2, 29), (2028, 3, 31), (2028, 4, 30)]


def test_feb_29_yearly() -> None:
    anchor = ts(2028, 2, 29, 12)
    assert boundaries(anchor, "year", 1, 6) == [
        (2028, 2, 29), (2029, 2, 28), (2030, 2, 28), (2031, 2, 28), (2032, 2, 29), (2033, 2, 28),
    ]  # fmt: skip


def test_days_and_weeks() -> None:
    anchor = ts(2027, 12, 30, 23, 59, 59)
    assert add_interval(anchor, "day", 1, 3) == ts(2028, 1, 2, 23, 59, 59)
    assert add_interval(anchor, "day", 10, 2) == ts(2028, 1, 19, 23, 59, 59)
    assert add_interval(anchor, "week", 1, 1) == ts(2028, 1, 6, 23, 59, 59)
    assert add_interval(anchor, "week", 2, 3) == ts(2028, 2, 10, 23, 59, 59)


def test_quarterly() -> None:
    anchor = ts(2027, 11, 30)
    assert boundaries(anchor, "month", 3, 5) == [
        (2027, 11, 30), (2028, 2, 29), (2028, 5, 30), (2028, 8, 30), (2028, 11, 30),
    ]  # fmt: skip


def test_period_containing_and_next_boundary() -> None:
    anchor = ts(2027, 1, 31, 10)
    feb, mar = ts(2027, 2, 28, 10), ts(2027, 3, 31, 10)
    assert period_containing(anchor, "month", 1, anchor) == (anchor, feb)
    assert period_containing(anchor, "month", 1, feb - 1) == (anchor, feb)
    assert period_containing(anchor, "month", 1, feb) == (feb, mar)
    assert period_containing(anchor, "month", 1, ts(2027, 3, 1)) == (feb, mar)
    assert next_boundary(anchor, "month", 1, feb) == mar
    assert next_boundary(anchor, "month", 1, anchor - 1) == anchor
    assert next_boundary(anchor, "month", 1, anchor) == feb
    # Far from the anchor: still exact, and computed without walking every period.
    assert period_containing(anchor, "day", 1, ts(2999, 6, 1, 11)) == (ts(2999, 6, 1, 10), ts(2999, 6, 2, 10))
    assert period_containing(anchor, "month", 1, ts(2999, 6, 1)) == (ts(2999, 5, 31, 10), ts(2999, 6, 30, 10))


def test_period_containing_rejects_time_before_anchor() -> None:
    with pytest.raises(ValueError, match="before the billing anchor"):
        period_containing(100, "day", 1, 99)


@pytest.mark.parametrize(
    ("interval", "count", "message"),
    [
        ("fortnight", 1, "interval must be one of day, week, month, year"),
        ("month", 0, "between 1 and 36"),
        ("month", 37, "between 1 and 36"),
        ("year", 4, "between 1 and 3"),
        ("day", 1096, "between 1 and 1095"),
        ("week", 157, "between 1 and 156"),
        ("month", 1.5, "must be an integer"),
        ("month", True, "must be an integer"),
    ],
)
def test_validate_interval_rejects(interval: str, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_interval(interval, count)


def test_add_interval_rejects_negative_index() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        add_interval(0, "day", 1, -1)


# --- properties ------------------------------------------------------------------------------

anchors = st.integers(ts(1970, 1, 1), ts(2100, 12, 31, 23, 59, 59))
plans = st.sampled_from(sorted(MAX_INTERVAL_COUNT)).flatmap(
    lambda interval: st.tuples(st.just(interval), st.integers(1, MAX_INTERVAL_COUNT[interval]))
)
indexes = st.integers(0, 600)


@FAST
@given(anchors, plans, indexes)
def test_periods_tile_without_gaps(anchor: int, plan: tuple[str, int], n: int) -> None:
    interval, count = plan
    start, end = add_interval(anchor, interval, count, n), add_interval(anchor, interval, count, n + 1)
    after = add_interval(anchor, interval, count, n + 2)
    assert start < end < after  # strictly increasing
    assert period_containing(anchor, interval, count, start) == (start, end)
    assert period_containing(anchor, interval, count, end - 1) == (start, end)
    assert period_containing(anchor, interval, count, end) == (end, after)  # end of n == start of n+1
    assert next_boundary(anchor, interval, count, start) == end


@FAST
@given(anchors, plans, st.integers(0, 400 * 366 * 86400))
def test_period_containing_contains(anchor: int, plan: tuple[str, int], offset: int) -> None:
    interval, count = plan
    at = anchor + offset
    start, end = period_containing(anchor, interval, count, at)
    assert start <= at < end
    assert next_boundary(anchor, interval, count, at) == end


@FAST
@given(anchors, plans, indexes)
def test_boundary_day_and_time_of_day(anchor: int, plan: tuple[str, int], n: int) -> None:
    interval, count = plan
    boundary, origin = dt(add_interval(anchor, interval, count, n)), dt(anchor)
    assert boundary.time() == origin.time()
    if interval in ("month", "year"):
        last_day = calendar.monthrange(boundary.year, boundary.month)[1]
        assert boundary.day == origin.day or (boundary.day == last_day < origin.day)
        months = (boundary.year - origin.year) * 12 + boundary.month - origin.month
        assert months == n * count * (12 if interval == "year" else 1)

"""When a failed delivery is tried again: the contract's schedule, ±20 % jitter, `Retry-After`."""

from __future__ import annotations

import random
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

# Delays after the 1st, 2nd, … failure; after the last one the delivery has failed for good.
RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.2
MAX_RETRY_AFTER = 86400.0  # a hostile or buggy header cannot park a delivery for longer


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def next_retry(
    attempts: int,
    now: float,
    *,
    schedule: Sequence[float] = RETRY_SCHEDULE,
    retry_after: float | None = None,
    jitter: float = JITTER,
    rng: random.Random | None = None,
) -> float | None:
    """When to try again after `attempts` failed attempts in all; None once the schedule is spent.

    `Retry-After` is honoured as "not before": the later of it and the jittered schedule (a
    receiver asking for 1 s still waits the scheduled 5 s; one asking for 1 h gets 1 h).
    """
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (1 + (rng or random).uniform(-jitter, jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay

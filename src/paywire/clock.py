"""Where the engine reads time: the wall clock, or a test clock for the objects attached to one."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


def iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC (`2026-11-26T12:26:40Z`)."""
    return _iso(int(ts))


@lru_cache(maxsize=4096)  # rendering a batch of events repeats the same few seconds
def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

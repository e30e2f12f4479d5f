"""The LISTEN listener's throttle: the first notification wakes at once, a burst wakes once more."""

from __future__ import annotations

import asyncio

from paywire.db.signal import PostgresListener, Signal


async def test_a_notification_after_a_quiet_spell_wakes_at_once() -> None:
    signal = Signal()
    listener = PostgresListener("postgresql://unused", signal, min_interval=0.05)
    snapshot = signal.snapshot()
    listener._on_notify()
    assert snapshot.is_set()  # no timer in between


async def test_a_burst_within_the_interval_wakes_once_after_it() -> None:
    signal = Signal()
    listener = PostgresListener("postgresql://unused", signal, min_interval=0.05)
    listener._on_notify()
    after_first = signal.snapshot()
    for _ in range(10):
        listener._on_notify()
    assert not after_first.is_set()  # held back: within the interval of the first wake-up
    await asyncio.wait_for(after_first.wait(), 1.0)  # ... but not lost
    assert not signal.snapshot().is_set()  # one wake-up for the ten

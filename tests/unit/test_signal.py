"""The LISTEN listener's throttle: the first notification wakes at once, a burst wakes once more;
a waiter cancelled as it is notified is cancelled."""

from __future__ import annotations

import asyncio
import contextlib

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


async def test_a_cancel_that_comes_with_a_notify_is_not_lost() -> None:
    signal = Signal()
    waiting = asyncio.create_task(signal.wait(signal.snapshot(), 10))
    await asyncio.sleep(0.01)
    signal.notify()
    waiting.cancel()  # in the same turn as the notify (a stream hub stopped as a commit lands)
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()
    assert await signal.wait(signal.snapshot(), 0.01) is False  # and the timeout still times out

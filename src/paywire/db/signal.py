"""Wake-ups: "new rows may be waiting". Waiters re-read the database; a signal carries no data.

In-process commits notify directly. Other processes' commits arrive through PostgreSQL
`LISTEN/NOTIFY` when available; every waiter also wakes on its own poll interval, the fallback
that SQLite (and a lost LISTEN connection) relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("paywire.db")

CHANNEL = "paywire_events"


class Signal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def snapshot(self) -> asyncio.Event:
        """Take before reading the database, then `wait(snapshot)`: a notify in between is not lost."""
        return self._event

    def notify(self) -> None:
        fired, self._event = self._event, asyncio.Event()
        fired.set()

    @staticmethod
    async def wait(snapshot: asyncio.Event, timeout: float) -> bool:
        """True if notified, False after `timeout` seconds."""
        try:
            # Not `wait_for`: on 3.11 it swallows a cancel that comes with the notify (its inner
            # wait done first), and a stream hub being stopped then ran on and was awaited forever.
            async with asyncio.timeout(timeout):
                await snapshot.wait()
        except TimeoutError:
            return False
        return True


class PostgresListener:
    """Keeps one LISTEN connection open and turns notifications into `signal.notify()`.

    Bursts are coalesced: at most one wake-up per `min_interval` seconds (a throttle, so a storm
    of commits does not become a storm of re-reads). The first notification after a quiet spell
    wakes at once: waiting `min_interval` on every one was most of the median delay between
    another process's commit and an event stream's read (2.1 of ~4 ms, measured by
    `bench/eventbus.py` with the hub's steps timed).
    """

    def __init__(self, dsn: str, signal: Signal, *, min_interval: float = 0.002) -> None:
        self.dsn = dsn
        self.signal = signal
        self.min_interval = min_interval
        self._task: asyncio.Task[None] | None = None
        self._pending = False
        self._fired_at = -min_interval  # (loop time) when the last wake-up went out

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="paywire-listen")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_notify(self, *_: Any) -> None:
        if self._pending:
            return
        loop = asyncio.get_running_loop()
        wait = self._fired_at + self.min_interval - loop.time()
        if wait <= 0:
            self._fire()
        else:  # one wake-up for every notification until then
            self._pending = True
            loop.call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = False
        self._fired_at = asyncio.get_running_loop().time()
        self.signal.notify()

    async def _run(self) -> None:
        import asyncpg

        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection failed (%s); polling until it is back", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            delay = 0.5
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _c, closed=closed: closed.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                self.signal.notify()  # anything committed while we were away
                await closed.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

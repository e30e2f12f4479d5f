"""A background `Service` that does one piece of work every `interval` seconds until stopped.

The worker's heartbeat, its retention runs and its recovery of abandoned test-clock advances are
each one of these. A tick that fails (the database restarting, say) is logged and the next one
tries again; stopping cancels the loop and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("paywire")


class Periodic:
    name = "paywire-periodic"
    sleep_first = False  # wait one interval before the first tick
    log_traceback = False  # a failed tick's traceback in the log, not only its error class

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        if self.sleep_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.warning("%s: %s", self.name, type(exc).__name__, exc_info=self.log_traceback)
            await asyncio.sleep(self.interval)

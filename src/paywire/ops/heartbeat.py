"""The background half's heartbeat: a row per worker process, refreshed every few seconds.

A `Service` of `PaywireApp` wherever the worker runs (`paywire worker`, `paywire serve` without
`--no-worker`). `/readyz` of any process reads the rows: the deployment has a live worker when
one was seen within `ALIVE_WITHIN` seconds. A stopped worker removes its row; a killed one's
row simply ages out (and is swept by the next worker that starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import worker_heartbeats as table
from paywire.ids import new_id

log = logging.getLogger("paywire.ops")

INTERVAL = 5.0
ALIVE_WITHIN = 30.0
SWEEP_AFTER = 24 * 3600.0


class Heartbeat:
    def __init__(self, db: Database, *, interval: float = INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self.id = new_id("wkr")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.conn.execute(table.delete().where(table.c.last_seen < now - SWEEP_AFTER))
            row = {"id": self.id, "host": socket.gethostname()[:255], "pid": os.getpid(), "started": now}
            await tx.conn.execute(table.insert().values(**row, last_seen=now))
        self._task = asyncio.create_task(self._beat(), name="paywire-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # going down anyway; the row ages out
            async with self.db.transaction() as tx:
                await tx.conn.execute(table.delete().where(table.c.id == self.id))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.db.transaction() as tx:
                    await tx.conn.execute(table.update().where(table.c.id == self.id).values(last_seen=time.time()))
            except Exception as exc:  # the database restarting: the next beat tries again
                log.warning("heartbeat: %s", type(exc).__name__)


async def live_workers(db: Database, *, now: float | None = None) -> int:
    cutoff = (now or time.time()) - ALIVE_WITHIN
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).where(table.c.last_seen >= cutoff)) or 0)

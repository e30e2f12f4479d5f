"""The background half's heartbeat: a row per worker process, refreshed every few seconds.

A `Service` of `PaywireApp` wherever the worker runs (`paywire worker`, `paywire serve` without
`--no-worker`). `/readyz` of any process reads the rows: the deployment has a live worker when
one was seen within `ALIVE_WITHIN` seconds. A stopped worker removes its row; a killed one's
row simply ages out (and is swept by the next worker that starts).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import worker_heartbeats as table
from paywire.ids import new_id
from paywire.periodic import Periodic

INTERVAL = 5.0
ALIVE_WITHIN = 30.0
SWEEP_AFTER = 24 * 3600.0


class Heartbeat(Periodic):
    name = "paywire-heartbeat"
    sleep_first = True  # `start` has just written the row

    def __init__(self, db: Database, *, interval: float = INTERVAL) -> None:
        super().__init__(interval)
        self.db = db
        self.id = new_id("wkr")

    async def start(self) -> None:
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.conn.execute(table.delete().where(table.c.last_seen < now - SWEEP_AFTER))
            row = {"id": self.id, "host": socket.gethostname()[:255], "pid": os.getpid(), "started": now}
            await tx.conn.execute(table.insert().values(**row, last_seen=now))
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(Exception):  # going down anyway; the row ages out
            async with self.db.transaction() as tx:
                await tx.conn.execute(table.delete().where(table.c.id == self.id))

    async def tick(self) -> None:
        async with self.db.transaction() as tx:
            await tx.conn.execute(table.update().where(table.c.id == self.id).values(last_seen=time.time()))


async def live_workers(db: Database, *, now: float | None = None) -> int:
    cutoff = (now or time.time()) - ALIVE_WITHIN
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).where(table.c.last_seen >= cutoff)) or 0)

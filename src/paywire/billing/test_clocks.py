"""Test clocks: frozen time for the objects attached to them, moved forward on demand.

Advancing runs every job due on the clock up to the new time, one transaction per job, in time
order, with the clock showing each job's due time while it runs; then the clock shows the new
time. The call returns when all of it is done. Status is `advancing` meanwhile, so a second
advance of the same clock is refused (409) rather than interleaved.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing.runtime import Billing, Call
from paywire.billing.scheduler import run_one
from paywire.billing.schemas import TestClockCreate
from paywire.db.engine import Database, Tx
from paywire.db.schema import test_clocks
from paywire.errors import Conflict, InvalidRequest
from paywire.ids import new_id

MAX_ADVANCE = 3 * 366 * 86_400  # the longest billing interval (3 years), leap days included
STALE_ADVANCE = 300  # an `advancing` clock untouched this long was left by a crashed process


def render(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "test_clock"),
        "name": m["name"],
        "frozen_time": m["frozen_time"],
        "status": m["status"],
    }


async def create(tx: Tx, call: Call, params: TestClockCreate) -> dict[str, Any]:
    if call.livemode:
        raise InvalidRequest("test clocks exist in test mode only; use a sk_test_ key")
    now = int(call.wall_now())
    row = {
        "id": new_id("clock"),
        "livemode": False,
        "name": params.name,
        "frozen_time": params.frozen_time,
        "status": "ready",
        "advance_to": None,
        "metadata": params.metadata or {},
        "created": now,
        "updated": now,
    }
    await tx.conn.execute(test_clocks.insert().values(**row))
    return render(row)


async def advance(db: Database, billing: Billing, call: Call, clock_id: str, frozen_time: int) -> dict[str, Any]:
    wall = int(call.wall_now())
    async with db.transaction() as tx:
        row = await objects.fetch(tx.conn, test_clocks, clock_id, call.livemode, lock=True)
        if frozen_time < row["frozen_time"]:
            raise InvalidRequest(
                f"frozen_time must not be before the clock's time ({row['frozen_time']})", param="frozen_time"
            )
        if frozen_time - row["frozen_time"] > MAX_ADVANCE:
            # One request runs every transition in between: bound its work (Stripe bounds it too).
            raise InvalidRequest(
                f"a test clock advances at most {MAX_ADVANCE // 86_400} days at a time; advance in steps",
                param="frozen_time",
            )
        if row["status"] == "advancing" and wall - row["updated"] < STALE_ADVANCE:
            raise Conflict(f"test clock {clock_id!r} is already advancing", code="test_clock_advancing")
        await tx.conn.execute(
            test_clocks.update()
            .where(test_clocks.c.id == clock_id)
            .values(status="advancing", advance_to=frozen_time, updated=wall)
        )
    try:
        while await run_one(db, billing, clock_id=clock_id, until=frozen_time):
            pass
        async with db.transaction() as tx:
            await tx.conn.execute(
                test_clocks.update()
                .where(test_clocks.c.id == clock_id)
                .values(frozen_time=frozen_time, status="ready", advance_to=None, updated=int(call.wall_now()))
            )
            done = (await tx.conn.execute(sa.select(test_clocks).where(test_clocks.c.id == clock_id))).mappings().one()
    except Exception:
        # Stopped part-way (the database went away): the clock stays at the last job that ran and
        # is ready again, so a retried advance resumes at once instead of 409 for STALE_ADVANCE.
        with contextlib.suppress(Exception):
            async with db.transaction() as tx:
                await tx.conn.execute(
                    test_clocks.update()
                    .where(test_clocks.c.id == clock_id, test_clocks.c.status == "advancing")
                    .values(status="ready", advance_to=None, updated=int(call.wall_now()))
                )
        raise
    return render(done)


def listing(livemode: bool) -> sa.Select[Any]:
    return sa.select(test_clocks).where(test_clocks.c.livemode == livemode)

"""Test clocks: frozen time for the objects attached to them, moved forward on demand.

Advancing runs every job due on the clock up to the new time, one transaction per job, in time
order, with the clock showing each job's due time while it runs; then the clock shows the new
time. Status is `advancing` meanwhile, so a second advance of the same clock is refused (409)
rather than interleaved — unless the process advancing it died: then the next advance, or a
worker's recovery, takes over at once and runs the jobs it had left (see `clock_owner`). A charge
such a process left `processing` on the clock is settled before the advance ends, so the jobs
its answer schedules (the next renewal, a dunning retry) run in it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import clock_owner, reconcile
from paywire.billing.runtime import Billing, Call
from paywire.billing.scheduler import run_batch
from paywire.billing.schemas import TestClockCreate
from paywire.billing.statuses import TestClockStatus
from paywire.db.engine import Database, Tx
from paywire.db.schema import test_clocks
from paywire.errors import Conflict, InvalidRequest
from paywire.ids import new_id
from paywire.periodic import Periodic

MAX_ADVANCE = 3 * 366 * 86_400  # the longest billing interval (3 years), leap days included
STALE_ADVANCE = 300  # an `advancing` clock with no lease, untouched this long, was left by a crash
ADVANCE_WAIT = 20.0  # an API advance answers within this; a longer one goes on in the background
log = logging.getLogger("paywire.scheduler")


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
        "status": TestClockStatus.READY,
        "advance_to": None,
        "metadata": params.metadata or {},
        "created": now,
        "updated": now,
    }
    await tx.conn.execute(test_clocks.insert().values(**row))
    return render(row)


class Advances:
    """Advances this process runs, so that a long one can go on after its request has answered.

    Held by the services of one app; `stop` cancels what is still running (the clock stays
    `advancing`, and whichever process advances it next, or a worker's recovery, takes over at
    once, since this process is then known to be gone)."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[dict[str, Any]]] = {}

    def start(self, clock_id: str, work: Awaitable[dict[str, Any]]) -> asyncio.Task[dict[str, Any]]:
        task = asyncio.ensure_future(work)
        self.running[clock_id] = task
        task.add_done_callback(lambda _t: self.running.pop(clock_id, None))
        return task

    async def stop(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def _abandoned(row: Any, wall: float) -> bool:
    """An `advancing` clock whose owner is gone (or silent past its lease) may be taken over."""
    if clock_owner.known_dead(row["advance_owner"]):
        return True
    lease = row["advance_lease"] if row["advance_lease"] is not None else row["updated"] + STALE_ADVANCE
    return bool(lease < wall)


async def advance(
    db: Database,
    billing: Billing,
    call: Call,
    clock_id: str,
    frozen_time: int,
    *,
    advances: Advances | None = None,
    wait: float = ADVANCE_WAIT,
) -> dict[str, Any]:
    """Move the clock to `frozen_time`, running every job due on it in time order.

    Returns the clock once done (`ready`). With `advances`, an advance still running after
    `wait` seconds goes on in the background and the clock is returned `advancing` (poll it,
    or watch for the events); without, the call returns only when all of it is done."""
    wall = call.wall_now()
    owner = clock_owner.this_process()
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
        if row["status"] == TestClockStatus.ADVANCING and not _abandoned(row, wall):
            raise Conflict(f"test clock {clock_id!r} is already advancing", code="test_clock_advancing")
        await tx.conn.execute(
            test_clocks.update()
            .where(test_clocks.c.id == clock_id)
            .values(
                status=TestClockStatus.ADVANCING,
                advance_to=frozen_time,
                advance_owner=owner,
                advance_lease=wall + clock_owner.LEASE,
                updated=int(wall),
            )
        )
    work = run_advance(db, billing, clock_id, frozen_time, owner)
    if advances is None:
        return await work
    task = advances.start(clock_id, work)
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(asyncio.shield(task), wait)
    async with db.read() as conn:
        return render(await objects.fetch(conn, test_clocks, clock_id, call.livemode))


async def run_advance(db: Database, billing: Billing, clock_id: str, target: int, owner: str) -> dict[str, Any]:
    """Run the clock's due jobs up to `target` while `owner` holds it, then show `target`."""
    owned = sa.and_(test_clocks.c.id == clock_id, test_clocks.c.advance_owner == owner)
    renewed = time.monotonic()
    try:
        taken_over = False
        settled: set[str] = set()
        while not taken_over:
            while await run_batch(db, billing, clock_id=clock_id, until=target):
                if time.monotonic() - renewed >= clock_owner.RENEW_EVERY:
                    renewed = time.monotonic()
                    async with db.transaction() as tx:
                        lease = time.time() + clock_owner.LEASE
                        kept = await tx.conn.execute(test_clocks.update().where(owned).values(advance_lease=lease))
                    if kept.rowcount == 0:  # another process took it over: it finishes the advance
                        taken_over = True
                        break
            if taken_over or not await reconcile.settle_clock(db, billing, clock_id, settled):
                break
        async with db.transaction() as tx:
            await tx.conn.execute(
                test_clocks.update()
                .where(owned, test_clocks.c.status == TestClockStatus.ADVANCING)
                .values(frozen_time=target, **_released(), updated=int(time.time()))
            )
            done = (await tx.conn.execute(sa.select(test_clocks).where(test_clocks.c.id == clock_id))).mappings().one()
    except Exception:
        # Stopped part-way (the database went away): the clock stays at the last job that ran and
        # is ready again, so a retried advance resumes at once.
        with contextlib.suppress(Exception):
            async with db.transaction() as tx:
                await tx.conn.execute(
                    test_clocks.update()
                    .where(owned, test_clocks.c.status == TestClockStatus.ADVANCING)
                    .values(**_released(), updated=int(time.time()))
                )
        raise
    return render(done)


def _released() -> dict[str, Any]:
    return {"status": TestClockStatus.READY, "advance_to": None, "advance_owner": None, "advance_lease": None}


async def recover_abandoned(db: Database, billing: Billing, advances: Advances) -> int:
    """Take over the advances that processes which died left half done; returns how many.

    Run by every worker's `AdvanceRecovery`; the take-over is one conditional update, so of two
    processes trying at once exactly one wins."""
    wall = time.time()
    async with db.read() as conn:
        rows = (
            (await conn.execute(sa.select(test_clocks).where(test_clocks.c.status == TestClockStatus.ADVANCING)))
            .mappings()
            .all()
        )
    taken = 0
    owner = clock_owner.this_process()
    for row in rows:
        if row["id"] in advances.running or row["advance_to"] is None or not _abandoned(row, wall):
            continue
        async with db.transaction() as tx:
            won = await tx.conn.execute(
                test_clocks.update()
                .where(
                    test_clocks.c.id == row["id"],
                    test_clocks.c.status == TestClockStatus.ADVANCING,
                    test_clocks.c.advance_owner.is_(None)
                    if row["advance_owner"] is None
                    else test_clocks.c.advance_owner == row["advance_owner"],
                )
                .values(advance_owner=owner, advance_lease=wall + clock_owner.LEASE, updated=int(wall))
            )
        if won.rowcount == 1:
            log.warning("test clock %s: resuming an advance its process left half done", row["id"])
            advances.start(row["id"], run_advance(db, billing, row["id"], int(row["advance_to"]), owner))
            taken += 1
    return taken


class AdvanceRecovery(Periodic):
    """A `Service` of the worker: looks for abandoned advances every few seconds."""

    name = "paywire-clock-recovery"

    def __init__(self, db: Database, billing: Billing, advances: Advances, *, interval: float = 2.0) -> None:
        super().__init__(interval)
        self.db, self.billing, self.advances = db, billing, advances

    async def tick(self) -> None:
        await recover_abandoned(self.db, self.billing, self.advances)


def listing(livemode: bool) -> sa.Select[Any]:
    return sa.select(test_clocks).where(test_clocks.c.livemode == livemode)

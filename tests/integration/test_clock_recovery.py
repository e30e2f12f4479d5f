"""A test clock whose advancing process died is taken over at once, safely; a long advance goes
on in the background after its request has answered."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import charging, clock_advance, clock_owner
from paywire.db.engine import Database
from paywire.db.schema import billing_jobs, payment_intents
from paywire.db.schema import test_clocks as clocks_table
from tests.conftest import Server, _truncate_pg, serving

from .test_billing_timelines import DAY, T0, clock_customer, ok, price, subscribe


def _dead_owner() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:1"


async def _leave_advancing(server: Server, clock_id: str, owner: str, *, lease: float, to: int) -> None:
    async with server.app.db.transaction() as tx:
        await tx.conn.execute(
            clocks_table.update()
            .where(clocks_table.c.id == clock_id)
            .values(status="advancing", advance_to=to, advance_owner=owner, advance_lease=lease)
        )


async def _renewals_left(server: Server, clock_id: str) -> int:
    j = billing_jobs
    due = sa.and_(j.c.test_clock_id == clock_id, j.c.status == "pending", j.c.kind == "renewal")
    async with server.app.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).where(due, j.c.due <= T0 + 40 * DAY)) or 0)


def test_owner_liveness() -> None:
    assert not clock_owner.known_dead(clock_owner.this_process())
    assert clock_owner.known_dead(_dead_owner())
    assert clock_owner.known_dead(None)
    assert not clock_owner.known_dead("another-host:1:1")  # unknown, so never taken as dead


async def test_an_advance_left_by_a_dead_process_is_taken_over_at_once(api: httpx.AsyncClient, server: Server) -> None:
    clock_id, customer_id = await clock_customer(api)
    await subscribe(api, customer_id, await price(api))
    await _leave_advancing(server, clock_id, _dead_owner(), lease=time.time() + 3600, to=T0 + 32 * DAY)
    clock = await ok(api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 + 32 * DAY}))
    assert clock["status"] == "ready" and clock["frozen_time"] == T0 + 32 * DAY
    assert await _renewals_left(server, clock_id) == 0  # the renewal the dead process left did run
    types = [e["type"] for e in (await ok(api.get("/api/events", params={"type": "customer.subscription.*"})))["list"]]
    assert types.count("customer.subscription.renewed") == 1


async def test_a_live_owner_or_an_unexpired_lease_is_respected(api: httpx.AsyncClient, server: Server) -> None:
    clock_id, _ = await clock_customer(api)
    for owner in (clock_owner.this_process(), "another-host:42:7"):
        await _leave_advancing(server, clock_id, owner, lease=time.time() + 60, to=T0 + DAY)
        busy = await api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 + DAY})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "test_clock_advancing"
    await _leave_advancing(server, clock_id, "another-host:42:7", lease=time.time() - 1, to=T0 + DAY)
    clock = await ok(api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 + DAY}))
    assert clock["status"] == "ready"  # the other host's lease ran out


async def test_a_worker_finishes_an_abandoned_advance_by_itself(api: httpx.AsyncClient, server: Server) -> None:
    clock_id, customer_id = await clock_customer(api)
    await subscribe(api, customer_id, await price(api))
    await _leave_advancing(server, clock_id, _dead_owner(), lease=time.time() + 3600, to=T0 + 32 * DAY)
    for _ in range(100):  # the server's own worker looks every 2 s
        clock = await ok(api.get(f"/api/test-clocks/{clock_id}"))
        if clock["status"] == "ready":
            break
        await asyncio.sleep(0.1)
    assert clock["status"] == "ready" and clock["frozen_time"] == T0 + 32 * DAY
    assert await _renewals_left(server, clock_id) == 0


async def test_a_long_advance_answers_advancing_and_finishes_in_the_background(
    api: httpx.AsyncClient, server: Server
) -> None:
    clock_id, customer_id = await clock_customer(api)
    for _ in range(3):
        await subscribe(api, customer_id, await price(api))
    app = server.app
    call = app.billing.call(False)
    answer = await clock_advance.advance(
        app.db, app.billing, call, clock_id, T0 + 95 * DAY, advances=app.services.advances, wait=0
    )
    assert answer["status"] == "advancing"
    await asyncio.wait_for(app.services.advances.running[clock_id], 60)
    clock = await ok(api.get(f"/api/test-clocks/{clock_id}"))
    assert clock["status"] == "ready" and clock["frozen_time"] == T0 + 95 * DAY
    renewed = await ok(api.get("/api/events", params={"type": "customer.subscription.renewed", "size": 100}))
    assert renewed["count"] == 9  # three subscriptions, three renewals each


async def _left_on_the_clock(server: Server, clock_id: str) -> tuple[list[int], int]:
    """The clock's pending jobs due by its time, and its charges still `processing`."""
    j, pi = billing_jobs, payment_intents
    async with server.app.db.read() as conn:
        shown = await conn.scalar(sa.select(clocks_table.c.frozen_time).where(clocks_table.c.id == clock_id))
        due = sa.and_(j.c.test_clock_id == clock_id, j.c.status == "pending", j.c.due <= shown)
        left = list((await conn.execute(sa.select(j.c.due).where(due))).scalars())
        processing = sa.and_(pi.c.test_clock_id == clock_id, pi.c.status == "processing")
        charging_now = int(await conn.scalar(sa.select(sa.func.count()).where(processing)) or 0)
    return left, charging_now


async def test_charges_a_batch_left_processing_are_settled_before_the_advance_ends(
    api: httpx.AsyncClient, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the process that ran a renewal batch was killed between its charges and their
    answers: the answers schedule the next renewal, due before the advance's target."""
    clock_id, customer_id = await clock_customer(api)
    await subscribe(api, customer_id, await price(api))

    async def answers_lost(*_args: object, **_kwargs: object) -> None:
        return None

    monkeypatch.setattr(charging, "settle_many", answers_lost)
    clock = await ok(api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 + 65 * DAY}))
    assert clock["status"] == "ready" and clock["frozen_time"] == T0 + 65 * DAY
    assert await _left_on_the_clock(server, clock_id) == ([], 0)
    renewed = await ok(api.get("/api/events", params={"type": "customer.subscription.renewed"}))
    assert renewed["count"] == 2  # February's and March's


@pytest.mark.postgres
async def test_a_job_still_locked_by_the_owner_taken_over_from_is_waited_for(pg_url: str) -> None:
    """PostgreSQL rolls a killed process's transaction back only once it notices: until then its
    jobs are locked. The advance that took the clock over waits for them rather than skipping
    them and showing the clock past a renewal that never ran."""
    await _truncate_pg(pg_url)
    holder = Database(pg_url)
    try:
        async with serving(PaywireApp(pg_url)) as server, server.client() as api:
            clock_id, customer_id = await clock_customer(api)
            await subscribe(api, customer_id, await price(api))
            async with holder.engine.connect() as dying:  # the owner's transaction, not yet rolled back
                await dying.begin()
                await dying.execute(
                    sa.select(billing_jobs.c.seq)
                    .where(billing_jobs.c.test_clock_id == clock_id, billing_jobs.c.status == "pending")
                    .with_for_update()
                )
                advancing = asyncio.ensure_future(
                    api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 + 32 * DAY})
                )
                await asyncio.sleep(0.5)
                assert not advancing.done()
                await dying.rollback()
            clock = await ok(advancing)
            assert clock["status"] == "ready" and clock["frozen_time"] == T0 + 32 * DAY
            assert await _left_on_the_clock(server, clock_id) == ([], 0)
    finally:
        await holder.dispose()

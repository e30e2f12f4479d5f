"""`ordering: "per_object"` for real: 200 objects x 10 events to one destination, a receiver
failing 30 % of requests at random, two `paywire worker` processes on PostgreSQL, one of them
SIGKILLed mid-run and restarted. For every object, the order of first successful receipt equals
the event order, and nothing is lost."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import events, webhook_deliveries
from paywire.destinations import store
from paywire.events.log import NewEvent, append
from paywire.schemas import EventDestinationCreate
from tests.faults.harness import Procs, seed
from tests.integration.delivery_receiver import Receiver

pytestmark = pytest.mark.postgres

OBJECTS = 200
STEPS = 10


async def test_per_object_order_survives_failures_a_sigkill_and_two_workers(
    fault_url: str, procs: Procs, receiver: Receiver
) -> None:
    rng = random.Random(seed(1400))
    receiver.rng, receiver.fail_rate = random.Random(seed(1401)), 0.3
    db = Database(fault_url)
    try:
        params = EventDestinationCreate(
            type="webhook", config={"url": receiver.at("/random")}, enabled_events=["*"], ordering="per_object"
        )
        async with db.transaction() as tx:
            destination = await store.create(tx, params, livemode=False, now=time.time())
        receiver.secrets["/random"] = [destination["secret"]]
        procs.start_worker()
        procs.start_worker()
        await procs.wait_workers_started()
        plan: list[tuple[str, int]] = []
        for step in range(STEPS):  # every object's events in order, the objects interleaved
            objects = [f"cus_ordered{i:03d}" for i in range(OBJECTS)]
            rng.shuffle(objects)
            plan += [(obj, step) for obj in objects]
        for start in range(0, len(plan), 50):
            async with db.transaction() as tx:
                await append(
                    tx,
                    [NewEvent("customer.updated", {"id": obj, "step": step}) for obj, step in plan[start : start + 50]],
                    livemode=False,
                    now=time.time(),
                )
        total = len(plan)

        def first_receipts() -> list[str]:
            seen: set[str] = set()
            order = []
            for got in receiver.accepted:
                if got.path == "/random" and got.webhook_id not in seen:
                    seen.add(got.webhook_id)
                    order.append(got.webhook_id)
            return order

        async with asyncio.timeout(300):
            while len(first_receipts()) < total * 0.3:
                await asyncio.sleep(0.05)
            procs.kill(procs.workers[0])  # mid-run: claims, sends and unrecorded attempts lost
            procs.start_worker(0)
            await procs.wait_workers_started()
            while len(first_receipts()) < total:
                await asyncio.sleep(0.2)
            while True:  # every outcome recorded
                async with db.read() as conn:
                    pending = await conn.scalar(
                        sa.select(sa.func.count()).where(webhook_deliveries.c.status == "pending")
                    )
                if pending == 0:
                    break
                await asyncio.sleep(0.2)
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(events.c.id, events.c.object_id).order_by(events.c.seq))).all()
            statuses: dict[str, int] = dict(
                (await conn.execute(sa.select(webhook_deliveries.c.status, sa.func.count()).group_by("status"))).all()
            )
    finally:
        await db.dispose()
    expected: dict[str, list[str]] = defaultdict(list)
    for event_id, object_id in rows:
        expected[object_id].append(event_id)
    object_of = {event_id: object_id for event_id, object_id in rows}
    got: dict[str, list[str]] = defaultdict(list)
    for event_id in first_receipts():
        got[object_of[event_id]].append(event_id)
    assert len(expected) == OBJECTS and all(len(ids) == STEPS for ids in expected.values())
    wrong = [obj for obj in expected if got[obj] != expected[obj]]
    assert not wrong, f"{len(wrong)} objects out of order, e.g. {wrong[0]}"
    assert statuses == {"succeeded": total}  # nothing lost, nothing failed for good
    assert all(all(r.verified.values()) for r in receiver.received)
    failures = sum(1 for r in receiver.received if r.path == "/random") - len(receiver.accepted)
    print(f"\nordered: {total} events, {len(receiver.received)} requests, {failures} answered 500")

"""The dispatcher's rules for every destination type, with the in-memory transport: per-
destination caps, back-off of an unreachable destination, the retry schedule, give-up, disable
(and its `webhook_endpoint.disabled` event), and `ordering: per_object`. On both databases."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import events, webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.destinations import store
from paywire.destinations.base import Job
from paywire.destinations.memory import MemoryDestination, Verdict
from paywire.events.log import NewEvent, append
from paywire.schemas import EventDestinationCreate
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher

FAST = DeliveryConfig(
    timeout=1.0,
    schedule=(0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05),
    jitter=0.0,
    lease=5.0,
    poll_interval=0.05,
    per_endpoint=3,
    failures_before_backoff=100,
    record_linger=0.01,
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def destination(db: Database, **fields: Any) -> str:
    params = EventDestinationCreate(
        **{"type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}, "enabled_events": ["*"], **fields}
    )
    async with db.transaction() as tx:
        created = await store.create(tx, params, livemode=False, now=time.time())
    return str(created["id"])


async def emit(db: Database, objects_and_steps: list[tuple[str, int]]) -> None:
    async with db.transaction() as tx:
        await append(
            tx,
            [NewEvent("customer.updated", {"id": obj, "step": step}) for obj, step in objects_and_steps],
            livemode=False,
            now=time.time(),
        )


async def delivery_states(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(webhook_deliveries.c.status, sa.func.count()).group_by(webhook_deliveries.c.status)
        )
        return {status: n for status, n in rows}


async def run(db: Database, memory: MemoryDestination, config: DeliveryConfig, done: Any, timeout: float = 20) -> None:
    dispatcher = Dispatcher(db, config, transports={"webhook": memory})
    await dispatcher.start()
    try:
        deadline = time.monotonic() + timeout
        while not await done():
            assert time.monotonic() < deadline, f"not done in {timeout} s: {await delivery_states(db)}"
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert memory.closed  # the dispatcher closes its transports when it stops


async def test_caps_retries_and_give_up_hold_for_any_transport(db: Database) -> None:
    flaky = await destination(db)
    rejecting = await destination(db)
    tries: dict[str, int] = defaultdict(int)

    async def decide(job: Job) -> Verdict:
        await asyncio.sleep(0.01)  # in flight a while: the cap shows
        if job.endpoint_id == rejecting:
            return "give_up"
        tries[job.event_id] += 1
        return "ok" if tries[job.event_id] > 2 else "retry"

    memory = MemoryDestination(decide)
    await emit(db, [(f"cus_{i}", 0) for i in range(12)])

    async def done() -> bool:
        return (await delivery_states(db)).get("pending", 0) == 0

    await run(db, memory, FAST, done)
    assert memory.most_in_flight[flaky] <= FAST.per_endpoint and memory.most_in_flight[rejecting] <= FAST.per_endpoint
    assert await delivery_states(db) == {"succeeded": 12, "failed": 12}
    async with db.read() as conn:
        attempts = (await conn.execute(sa.select(webhook_attempts))).mappings().all()
    by_destination = defaultdict(list)
    for a in attempts:
        by_destination[a["endpoint_id"]].append(a)
    assert len(by_destination[rejecting]) == 12  # given up at once: no retry
    assert all(a["next_retry"] is None and a["status"] == "failed" for a in by_destination[rejecting])
    assert len(by_destination[flaky]) == 36  # two retries each on the schedule, then success
    assert {a["error_type"] for a in by_destination[flaky] if a["status"] == "failed"} == {"connection_refused"}
    # Every message carries the Standard Webhooks headers.
    assert all(set(m.headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"} for m in memory.messages)


async def test_a_freed_slot_goes_to_the_destinations_waiting_for_one_in_turn(db: Database) -> None:
    """With every global slot taken, a slot that comes free goes to the destinations waiting for
    one, first come first served, and the destination that gave it up goes after them: each
    destination has its first message out before any has its second."""
    ids = [await destination(db) for _ in range(12)]
    started: list[str] = []  # the destination of each send, in the order they started
    most_in_flight = 0

    async def decide(job: Job) -> Verdict:
        nonlocal most_in_flight
        started.append(job.endpoint_id)
        most_in_flight = max(most_in_flight, sum(memory.in_flight.values()))
        await asyncio.sleep(0.01)
        return "ok"

    memory = MemoryDestination(decide)
    await emit(db, [(f"cus_{i}", 0) for i in range(3)])

    async def done() -> bool:
        return (await delivery_states(db)) == {"succeeded": 3 * len(ids)}

    await run(db, memory, dataclasses.replace(FAST, concurrency=4, per_endpoint=1), done)
    assert most_in_flight <= 4
    assert len(started) == 3 * len(ids)
    assert sorted(started[: len(ids)]) == sorted(ids)  # one each, then the second round


async def test_disable_verdict_disables_the_destination_and_emits_the_event(db: Database) -> None:
    doomed = await destination(db, enabled_events=["customer.updated"])
    memory = MemoryDestination(lambda job: "disable")
    await emit(db, [("cus_1", 0)])

    async def done() -> bool:
        async with db.read() as conn:
            status = await conn.scalar(sa.select(webhook_endpoints.c.status).where(webhook_endpoints.c.id == doomed))
        return status == "disabled"

    await run(db, memory, FAST, done)
    async with db.read() as conn:
        types = list((await conn.execute(sa.select(events.c.type).order_by(events.c.seq))).scalars())
        reason = await conn.scalar(sa.select(webhook_endpoints.c.disabled_reason))
    assert types == ["customer.updated", "webhook_endpoint.disabled"] and reason == "gone"


async def test_the_disabled_event_renders_each_type_as_its_api_does(db: Database) -> None:
    """A broker destination's `webhook_endpoint.disabled` object is the event destination (type,
    masked config, no secret; it has no url); a webhook endpoint's stays the webhook endpoint."""
    from paywire.db.schema import events as events_table
    from paywire.events.log import render_json, select_events_json

    broker = await destination(
        db, type="redis", config={"url": "redis://:hunter2@127.0.0.1:6379/0"}, enabled_events=["customer.updated"]
    )
    hook = await destination(db, enabled_events=["customer.updated"])
    memory = MemoryDestination(lambda job: "disable")
    await emit(db, [("cus_1", 0)])

    async def done() -> bool:
        async with db.read() as conn:
            statuses = set((await conn.execute(sa.select(webhook_endpoints.c.status))).scalars())
        return statuses == {"disabled"}

    dispatcher = Dispatcher(db, FAST, transports={"webhook": memory, "redis": memory})
    await dispatcher.start()
    try:
        deadline = time.monotonic() + 20
        while not await done():
            assert time.monotonic() < deadline, await delivery_states(db)
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    async with db.read() as conn:
        query = select_events_json().where(events_table.c.type == "webhook_endpoint.disabled")
        rendered = [json.loads(render_json(row._mapping)) for row in await conn.execute(query)]
    by_id = {event["data"]["object"]["id"]: event for event in rendered}
    assert set(by_id) == {broker, hook}
    shown = by_id[broker]["data"]["object"]
    assert shown["object"] == "event_destination" and shown["type"] == "redis" and shown["status"] == "disabled"
    assert shown["config"]["url"] == "redis://:****@127.0.0.1:6379/0" and "url" not in shown
    assert "secret" not in shown and "hunter2" not in json.dumps(by_id[broker])
    assert by_id[broker]["data"]["previous_attributes"] == {"status": "enabled"}
    webhook = by_id[hook]["data"]["object"]
    assert webhook["object"] == "webhook_endpoint" and webhook["url"] == "http://127.0.0.1:9/x"
    assert webhook["status"] == "disabled" and "type" not in webhook and "config" not in webhook


async def test_an_unreachable_destination_is_backed_off(db: Database) -> None:
    dead = await destination(db)
    memory = MemoryDestination(lambda job: "retry")
    await emit(db, [(f"cus_{i}", 0) for i in range(30)])
    config = DeliveryConfig(**{**FAST.__dict__, "failures_before_backoff": 3, "max_backoff": 10.0})
    started = time.monotonic()

    async def done() -> bool:
        return time.monotonic() - started > 1.5

    await run(db, memory, config, done)
    # Without back-off: 30 deliveries x 8 attempts in 1.5 s. Backed off: a few probes.
    assert len(memory.messages) < 60, len(memory.messages)
    assert memory.most_in_flight[dead] <= config.per_endpoint


async def test_per_object_ordering_holds_through_random_failures(db: Database) -> None:
    ordered = await destination(db, ordering="per_object")
    unordered = await destination(db)
    rng = random.Random(14)
    first_ok: dict[str, list[str]] = defaultdict(list)  # destination -> event ids, first success order
    seen_ok: set[tuple[str, str]] = set()

    async def decide(job: Job) -> Verdict:
        await asyncio.sleep(rng.random() * 0.005)
        if rng.random() < 0.3:
            return 500
        if (job.endpoint_id, job.event_id) not in seen_ok:
            seen_ok.add((job.endpoint_id, job.event_id))
            first_ok[job.endpoint_id].append(job.event_id)
        return "ok"

    plan = [(f"cus_{i}", step) for step in range(6) for i in range(15)]
    rng.shuffle(plan)
    plan.sort(key=lambda p: p[1])  # each object's steps in order; objects interleaved
    for start in range(0, len(plan), 10):
        await emit(db, plan[start : start + 10])
    config = DeliveryConfig(**{**FAST.__dict__, "per_endpoint": 10, "schedule": (0.02,) * 30})

    async def done() -> bool:
        return len(seen_ok) == 2 * len(plan)

    await run(db, MemoryDestination(decide), config, done, timeout=60)
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(events.c.id, events.c.object_id).order_by(events.c.seq))).all()
    expected: dict[str, list[str]] = defaultdict(list)
    for event_id, object_id in rows:
        expected[object_id].append(event_id)
    object_of = {event_id: object_id for event_id, object_id in rows}
    got: dict[str, list[str]] = defaultdict(list)
    for event_id in first_ok[ordered]:
        got[object_of[event_id]].append(event_id)
    assert got == expected  # every object's events first succeeded in event order
    async with db.read() as conn:
        keys = dict(
            (await conn.execute(sa.select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.order_key))).all()
        )
    assert keys[ordered] is not None and keys[unordered] is None


async def test_recover_and_resend_work_for_any_type_and_keep_order(db: Database) -> None:
    from paywire.webhooks import delivery, endpoints

    ordered = await destination(db, ordering="per_object")
    verdicts = {"mode": "give_up"}
    memory = MemoryDestination(lambda job: verdicts["mode"])
    await emit(db, [("cus_1", 0), ("cus_1", 1)])

    async def all_failed() -> bool:
        return await delivery_states(db) == {"failed": 2}

    await run(db, memory, FAST, all_failed)  # each failed for good in turn: the next proceeded
    assert len(memory.messages) == 2
    first, second = [m.id for m in memory.messages]
    verdicts["mode"] = "ok"
    async with db.transaction() as tx:
        assert await endpoints.recover_endpoint(tx, ordered, livemode=False, since=0, now=time.time(), kind=None) == 2
    memory2 = MemoryDestination(lambda job: verdicts["mode"])

    async def all_done() -> bool:
        return (await delivery_states(db)).get("pending", 0) == 0

    await run(db, memory2, FAST, all_done)
    assert [m.id for m in memory2.messages] == [first, second]  # recovered: in their original order
    # A resend of the first while a newer event of the object is pending goes after it.
    await emit(db, [("cus_1", 2)])
    async with db.transaction() as tx:
        await delivery.resend(tx, first, ordered, livemode=False, now=time.time())
    memory3 = MemoryDestination(lambda job: "ok")
    await run(db, memory3, FAST, all_done)
    assert [m.id for m in memory3.messages][1:] == [first] and len(memory3.messages) == 2


async def test_a_broker_config_is_encrypted_and_moves_to_a_new_key(database_url: str) -> None:
    from paywire import secrets_store
    from paywire.secrets_at_rest import Keyring, envelope_key_id, generate_key

    old, new = generate_key(), generate_key()
    db = Database(database_url, keyring=Keyring.from_text(old))
    await migrate.upgrade(db)
    try:
        made = await destination(db, type="redis", config={"url": "redis://:hunter2@127.0.0.1:6379/0"})
        async with db.read() as conn:
            stored = await conn.scalar(sa.select(webhook_endpoints.c.config).where(webhook_endpoints.c.id == made))
        assert stored is not None and "hunter2" not in stored and stored.startswith("enc:")
        assert envelope_key_id(stored) == Keyring.from_text(old).current_id
        rotated = Keyring.from_text(new, [old])
        await secrets_store.reencrypt(db, rotated)
        async with db.read() as conn:
            row = (
                (await conn.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id == made)))
                .mappings()
                .one()
            )
        assert envelope_key_id(row["config"]) == rotated.current_id
        assert store.render(row, Keyring.from_text(new))["config"]["url"] == "redis://:****@127.0.0.1:6379/0"
        assert store.stored_config(row, Keyring.from_text(new))["url"] == "redis://:hunter2@127.0.0.1:6379/0"
    finally:
        await db.dispose()

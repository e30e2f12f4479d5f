"""`Database("sqlite:///:memory:")`: one private in-memory database for every connection of
that `Database` (migrations, writes, reads, the billing engine, the dispatcher), gone on
`dispose()`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import customers, products, subscriptions
from paywire.billing.schemas import SubscriptionCreate, SubscriptionItemIn
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.memory import Gate
from paywire.db.schema import events, webhook_deliveries
from paywire.destinations import store
from paywire.destinations.memory import MemoryDestination
from paywire.events.log import NewEvent, append
from paywire.schemas import CustomerCreate, EventDestinationCreate, PriceCreate, ProductCreate, Recurring
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("sqlite:///:memory:")
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def count_events(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0)


async def emit(db: Database, object_id: str) -> None:
    async with db.transaction() as tx:
        await append(tx, [NewEvent("customer.updated", {"id": object_id})], livemode=False, now=time.time())


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
async def test_migrations_reach_every_connection_and_dispose_drops_the_database(url: str) -> None:
    db = Database(url, pool_size=3)
    await migrate.upgrade(db)
    # Three connections at once: each sees the migrated schema (a plain `:memory:` pool had three
    # empty databases).
    async with db.read() as a, db.read() as b, db.read() as c:
        for conn in (a, b, c):
            assert await conn.scalar(sa.select(sa.func.count()).select_from(events)) == 0
    assert db._memory is not None
    uri = db._memory.uri
    await db.dispose()
    with sqlite3.connect(uri, uri=True) as after:
        assert after.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


async def test_two_memory_databases_are_private(db: Database) -> None:
    other = Database("sqlite:///:memory:")
    try:
        await migrate.upgrade(other)
        await emit(db, "cus_1")
        assert (await count_events(db), await count_events(other)) == (1, 0)
    finally:
        await other.dispose()


async def test_a_read_during_a_write_waits_for_its_commit(db: Database) -> None:
    """A read that starts while another task's write transaction is open neither fails
    (`database is locked`, `SQLITE_LOCKED`) nor sees the uncommitted rows: it waits for the commit."""
    await emit(db, "cus_0")
    appended = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as tx:
            await append(tx, [NewEvent("customer.updated", {"id": "cus_1"})], livemode=False, now=time.time())
            appended.set()
            await release.wait()

    writing = asyncio.create_task(writer())
    await appended.wait()
    reading = asyncio.create_task(count_events(db))
    await asyncio.sleep(0.2)
    assert not reading.done()  # no dirty read of the open transaction's event
    release.set()
    await writing
    assert await asyncio.wait_for(reading, 10) == 2


async def test_a_read_is_not_starved_by_back_to_back_writes(db: Database) -> None:
    """A read that arrives during a write goes in when that write ends, before the next one
    (SQLite's busy handler alone polled, and let a test clock's advance finish first)."""
    started = asyncio.Event()

    async def writer() -> None:
        for i in range(40):
            async with db.transaction() as tx:
                await append(tx, [NewEvent("customer.updated", {"id": f"cus_{i}"})], livemode=False, now=time.time())
                started.set()
                await asyncio.sleep(0.005)

    writing = asyncio.create_task(writer())
    await started.wait()
    seen = await count_events(db)
    await writing
    assert seen <= 2  # the write it arrived in, at most the one already queued


async def test_a_read_inside_its_own_write_runs_on_the_write(db: Database) -> None:
    async with db.transaction() as tx:
        await append(tx, [NewEvent("customer.updated", {"id": "cus_1"})], livemode=False, now=time.time())
        async with asyncio.timeout(5):  # (in this task: `wait_for` would run it in another)
            assert await count_events(db) == 1  # no wait for itself; it sees its own write
    assert await count_events(db) == 1


async def test_a_write_inside_its_own_read_is_refused_at_once(db: Database) -> None:
    async with db.read():
        with pytest.raises(RuntimeError, match="waits for itself"):
            async with asyncio.timeout(5):
                await emit(db, "cus_1")
    assert await count_events(db) == 0


async def test_a_read_cancelled_as_the_write_ends_is_cancelled() -> None:
    """(`asyncio.wait_for` on 3.11 returned instead: a stopped stream hub then never stopped.)"""
    gate = Gate(timeout=10)

    async def read() -> None:
        async with gate.shared():
            pass

    async with gate.exclusive():
        reading = asyncio.create_task(read())
        await asyncio.sleep(0.01)  # waiting for the write
    reading.cancel()  # in the same turn as the write ending woke it
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    assert reading.cancelled()
    async with asyncio.timeout(1), gate.exclusive():  # and it left nothing behind
        pass


async def test_writes_are_serialised(db: Database) -> None:
    await asyncio.gather(*(emit(db, f"cus_{i}") for i in range(20)))
    async with db.read() as conn:
        seqs = (await conn.execute(sa.select(events.c.seq).order_by(events.c.seq))).scalars().all()
    assert len(seqs) == 20 and len(set(seqs)) == 20


async def test_billing_creates_a_customer_and_a_subscription() -> None:
    app = PaywireApp("sqlite:///:memory:", run_worker=False)
    await app.start()
    try:
        call = app.billing.call(False)
        async with app.db.transaction() as tx:
            product = await products.create_product(tx, call, ProductCreate(name="Plan"))
            price = await products.create_price(
                tx,
                call,
                PriceCreate(
                    product_id=product["id"], unit_amount="9.00", currency="usd", recurring=Recurring(interval="month")
                ),
            )
            customer = await customers.create(tx, call, CustomerCreate(email="a@example.com"))
        async with app.db.transaction() as tx:
            params = SubscriptionCreate(
                customer_id=customer["id"],
                items=[SubscriptionItemIn(price_id=price["id"], quantity=1)],
                default_payment_method="pm_card_visa",
            )
            sub = await subscriptions.create(tx, call, params)
        assert sub["customer_id"] == customer["id"] and sub["status"] == "active"
        async with app.db.read() as conn:
            types = set((await conn.execute(sa.select(events.c.type))).scalars())
        assert {"customer.created", "customer.subscription.created"} <= types
    finally:
        await app.stop()


async def test_the_dispatcher_delivers_to_a_memory_destination(db: Database) -> None:
    params = EventDestinationCreate(type="webhook", config={"url": "http://127.0.0.1:9/x"}, enabled_events=["*"])
    async with db.transaction() as tx:
        await store.create(tx, params, livemode=False, now=time.time())
    await emit(db, "cus_1")
    memory = MemoryDestination()
    config = DeliveryConfig(timeout=1.0, jitter=0.0, lease=5.0, poll_interval=0.05, record_linger=0.01)
    dispatcher = Dispatcher(db, config, transports={"webhook": memory})
    await dispatcher.start()
    try:
        deadline = time.monotonic() + 10
        while not memory.messages or await pending(db):
            assert time.monotonic() < deadline, "the event was not delivered in 10 s"
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert len(memory.messages) == 1
    assert b"cus_1" in memory.messages[0].body


async def pending(db: Database) -> int:
    async with db.read() as conn:
        query = (
            sa.select(sa.func.count()).select_from(webhook_deliveries).where(webhook_deliveries.c.status == "pending")
        )
        return int(await conn.scalar(query) or 0)

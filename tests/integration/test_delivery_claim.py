"""Claiming: quotas per endpoint, leases, and disjoint claims from concurrent workers."""

from __future__ import annotations

import time
from collections import Counter

import sqlalchemy as sa

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries
from paywire.events.log import NewEvent, append
from paywire.schemas import WebhookEndpointCreate
from paywire.webhooks import delivery, endpoints


async def _setup(url: str, endpoint_count: int, events: int) -> tuple[Database, list[str]]:
    db = Database(url)
    await migrate.upgrade(db)
    ids = []
    async with db.transaction() as tx:
        for i in range(endpoint_count):
            params = WebhookEndpointCreate(url=f"http://127.0.0.1:9/{i}", enabled_events=["*"])
            ids.append((await endpoints.create(tx, params, livemode=False, now=time.time()))["id"])
        await append(
            tx,
            [NewEvent("customer.created", {"id": f"cus_{i}"}) for i in range(events)],
            livemode=False,
            now=time.time(),
        )
    return db, ids


async def _claim(db: Database, owner: str, **kwargs: object) -> list[delivery.Job]:
    params: dict[str, object] = {"lease": 30.0, "limit": 100, "quotas": {}, "default_quota": 10, "exclude": []}
    params.update(kwargs)
    async with db.transaction() as tx:
        return await delivery.claim(tx, owner=owner, now=time.time(), **params)  # type: ignore[arg-type]


async def test_claims_are_fair_leased_and_skip_excluded_endpoints(database_url: str) -> None:
    db, (busy, quiet, excluded) = await _setup(database_url, 3, 30)
    try:
        jobs = await _claim(db, "w1", quotas={quiet: 2}, exclude=[excluded])
        per_endpoint = {e: sum(1 for j in jobs if j.endpoint_id == e) for e in (busy, quiet, excluded)}
        assert per_endpoint == {busy: 10, quiet: 2, excluded: 0}
        assert all(j.attempts == 0 and j.body.startswith(b'{"id":"evt_') for j in jobs)
        # Leased rows are not claimed again until the lease runs out.
        again = await _claim(db, "w2", exclude=[excluded])
        assert not {j.seq for j in jobs} & {j.seq for j in again}
        async with db.read() as conn:
            owners = dict(
                (await conn.execute(sa.select(webhook_deliveries.c.seq, webhook_deliveries.c.lease_owner))).all()
            )
        assert {owners[j.seq] for j in jobs} == {"w1"}
        # Given back (a clean shutdown), they are claimable at once.
        async with db.transaction() as tx:
            await delivery.release(tx, "w1", [j.seq for j in jobs])
        assert (
            len(await _claim(db, "w3", limit=1000, default_quota=1000, exclude=[excluded])) == 60 - 20
        )  # all but w2's
    finally:
        await db.dispose()


async def test_concurrent_claims_on_postgresql_are_disjoint(database_url: str) -> None:
    db, _ = await _setup(database_url, 2, 50)
    try:
        if not db.is_postgres:  # SQLite has one writer: claims are serialised by BEGIN IMMEDIATE
            return
        async with db.transaction() as tx1, db.transaction() as tx2:
            first = await delivery.claim(
                tx1, owner="a", now=time.time(), lease=30, limit=40, quotas={}, default_quota=20, exclude=[]
            )
            second = await delivery.claim(
                tx2, owner="b", now=time.time(), lease=30, limit=40, quotas={}, default_quota=20, exclude=[]
            )
        assert len(first) == 40 and len(second) == 40  # SKIP LOCKED: the next rows, not a wait
        assert not {j.seq for j in first} & {j.seq for j in second}
    finally:
        await db.dispose()


async def test_one_claim_statement_asks_any_number_of_endpoints_each_up_to_its_quota(database_url: str) -> None:
    """The endpoints asked and their quotas are parameters of one statement (it once had a
    branch per endpoint, and its shapes, one per count, held memory in a worker)."""
    db, ids = await _setup(database_url, 37, 4)
    try:
        for count in range(1, 38):
            # Each claim is handed the first `count` endpoints (a window of the enabled ones),
            # with quotas from 0 (takes none) to 5 (more than the 4 it has due).
            quotas = {endpoint_id: n % 6 for n, endpoint_id in enumerate(ids[:count])}
            jobs = await _claim(db, f"w{count}", lease=0.0, limit=1000, endpoints=ids[:count], start=0, quotas=quotas)
            assert Counter(j.endpoint_id for j in jobs) == {i: min(q, 4) for i, q in quotas.items() if q}, count
        cached = delivery._claim_statement.cache_info().currsize
        assert cached <= 6  # with and without `per_object` ordering; on SQLite, ranked or not
    finally:
        await db.dispose()

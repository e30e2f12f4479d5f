"""Fan-out: one event to hundreds of endpoints is claimed in O(endpoints / claim size) turns.

Each claim asks at most `MAX_ENDPOINTS_PER_CLAIM` endpoints (made 100 here, so that a few hundred
endpoints take several claims, as 10,000 do at the real size). It once asked a window that moved
on by one endpoint per claim and, given a short batch, waited for the next wake-up: one event to
10,000 endpoints went out at about ten deliveries a second. Counted here in claim turns, not time.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries
from paywire.events.log import NewEvent, append
from paywire.schemas import WebhookEndpointCreate
from paywire.webhooks import delivery, endpoints
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.integration.delivery_receiver import Receiver, until

ENDPOINTS = 400
MAX_ENDPOINTS_PER_CLAIM = 100


@pytest.fixture(autouse=True)
def _claim_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "MAX_ENDPOINTS_PER_CLAIM", MAX_ENDPOINTS_PER_CLAIM)


async def _fan_out(url: str, receiver_url: str, count: int) -> Database:
    db = Database(url)
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        for i in range(count):
            params = WebhookEndpointCreate(url=f"{receiver_url}/ok?endpoint={i}", enabled_events=["*"])
            await endpoints.create(tx, params, livemode=False, now=time.time())
        await append(tx, [NewEvent("customer.created", {"id": "cus_1"})], livemode=False, now=time.time())
    return db


async def _left(db: Database) -> int:
    async with db.read() as conn:
        pending = sa.select(sa.func.count()).where(webhook_deliveries.c.status != "succeeded")
        return int(await conn.scalar(pending) or 0)


async def test_claims_go_round_the_endpoints_not_one_step_at_a_time(database_url: str) -> None:
    db = await _fan_out(database_url, "http://127.0.0.1:9", 250)
    try:
        enabled = await _enabled(db)
        seen: set[str] = set()
        start, claims = 0, 0
        while claims < 10:
            async with db.transaction() as tx:
                jobs, covered = await delivery.claim_from(
                    tx,
                    owner="w",
                    now=time.time(),
                    lease=30,
                    limit=500,
                    quotas={},
                    default_quota=10,
                    exclude=[],
                    start=start,
                    endpoints=enabled,
                )
            claims += 1
            assert not {j.endpoint_id for j in jobs} & seen
            seen |= {j.endpoint_id for j in jobs}
            start += covered
            if start >= len(enabled):
                break
        assert len(seen) == 250  # every endpoint's delivery, in one round of three claims
        assert claims == -(-250 // MAX_ENDPOINTS_PER_CLAIM)
    finally:
        await db.dispose()


async def _enabled(db: Database) -> list[str]:
    async with db.transaction() as tx:
        return await delivery.enabled_endpoints(tx)


async def test_one_event_to_hundreds_of_endpoints_takes_few_claim_turns(database_url: str) -> None:
    receiver = await Receiver().start()
    db = await _fan_out(database_url, receiver.url, ENDPOINTS)
    dispatcher = Dispatcher(db, DeliveryConfig(timeout=5.0, poll_interval=0.2, allow_private_networks=True))
    # Every endpoint has one delivery: a claim asks up to MAX_ENDPOINTS_PER_CLAIM endpoints, so
    # a handful of turns does it (plus turns that only record). Stepping one endpoint per claim
    # took about ENDPOINTS - MAX_ENDPOINTS_PER_CLAIM turns.
    bound = 3 * (ENDPOINTS // MAX_ENDPOINTS_PER_CLAIM) + 5
    await dispatcher.start()
    try:
        await until(lambda: len(receiver.received) >= ENDPOINTS or dispatcher._claims > bound, timeout=60)
        assert dispatcher._claims <= bound, f"{dispatcher._claims} claim turns for {len(receiver.received)} deliveries"
        assert len(receiver.received) == ENDPOINTS
        deadline = time.monotonic() + 30
        while await _left(db) and time.monotonic() < deadline:
            await dispatcher.db.signal.wait(dispatcher.db.signal.snapshot(), 0.05)
        assert await _left(db) == 0  # every attempt recorded
    finally:
        await dispatcher.stop()
        await db.dispose()
        await receiver.stop()


async def test_idle_endpoints_are_not_walked_but_their_read_ahead_still_decays(database_url: str) -> None:
    # After a fan-out most endpoints are idle: a turn walks only the busy ones, and an idle
    # one's read-ahead is caught up when a claim asks it, decayed once per turn it missed (at
    # most once per 0.05 s), as when every turn walked every endpoint: a slow endpoint back
    # from idle must not be given a large claim that lapses unsent.
    db = Database(database_url)
    try:
        dispatcher = Dispatcher(db, DeliveryConfig(per_endpoint=10))
        now = time.time()
        state = dispatcher._state("we_idle")
        state.sent = state.rate_sent = 100
        state.rate, state.rate_at = 1000.0, now - 1.0  # fast once, nothing sent for a second
        for _ in range(20):
            quotas, exclude = dispatcher._quotas(now)
            assert not quotas and not exclude  # not busy: not looked at
        assert quotas["we_idle"] == 10 * 2  # decayed to the floor: 2 per slot
        assert dispatcher._quotas(now)[0].get("we_unknown", 0) == 0  # never seen: the claim's default
    finally:
        await db.dispose()

"""What the busiest dashboard pages ask the database, on SQLite and PostgreSQL: one read
transaction per page (the session is looked up on the page's own connection), the events list
in one statement, the overview's pending deliveries in one statement for all endpoints. Each
round trip and pool checkout is time a page waits on a busy machine (bench/dashboard.py)."""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from paywire.app import PaywireApp
from paywire.billing import customers
from paywire.db.schema import operator_sessions, webhook_deliveries
from paywire.schemas import CustomerCreate, WebhookEndpointCreate
from paywire.webhooks import endpoints
from tests.conftest import Server, serving
from tests.web.dashboard_helpers import ADMIN, Browserless, create_operator


@pytest.fixture
async def quiet(database_url: str) -> AsyncIterator[Server]:
    """A server without the worker: every statement while a page loads is the page's."""
    async with serving(PaywireApp(database_url, run_worker=False)) as running:
        yield running


@pytest.fixture
async def admin(quiet: Server) -> AsyncIterator[Browserless]:
    await create_operator(quiet.app, *ADMIN)
    client = Browserless(quiet)
    assert (await client.sign_in(*ADMIN)).status_code == 303
    yield client
    await client.close()


@contextmanager
def recorded(app: PaywireApp) -> Iterator[dict[str, list[Any]]]:
    """The statements run and the transactions begun on `app`'s engine inside the block."""
    seen: dict[str, list[Any]] = {"statements": [], "begins": []}
    engine = app.db.engine.sync_engine

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen["statements"].append(" ".join(sql.split()))

    def begin(conn: Any) -> None:
        seen["begins"].append(conn)

    sa_event.listen(engine, "before_cursor_execute", statement)
    sa_event.listen(engine, "begin", begin)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", statement)
        sa_event.remove(engine, "begin", begin)


async def _fill(app: PaywireApp, endpoint_count: int, customer_count: int) -> list[str]:
    now = time.time()
    async with app.db.transaction() as tx:
        ids = [
            (
                await endpoints.create(
                    tx,
                    WebhookEndpointCreate(url=f"http://127.0.0.1:9/{i}", enabled_events=["*"]),
                    livemode=False,
                    now=now,
                )
            )["id"]
            for i in range(endpoint_count)
        ]
        for i in range(customer_count):
            await customers.create(tx, app.billing.call(False), CustomerCreate(name=f"c{i}"))
    return ids


async def test_a_read_page_is_one_read_transaction(quiet: Server, admin: Browserless) -> None:
    await _fill(quiet.app, 2, 3)
    for path in ("/dashboard/", "/dashboard/events", "/dashboard/events?type=customer.*", "/dashboard/endpoints"):
        await admin.get(path)  # the session's last_seen is touched at most once a minute: not now
        with recorded(quiet.app) as seen:
            response = await admin.get(path)
        assert response.status_code == 200, path
        assert any("operator_sessions" in sql for sql in seen["statements"]), path
        assert len(seen["begins"]) == 1, (path, seen["statements"])


async def test_the_events_list_is_one_statement_without_the_payloads(quiet: Server, admin: Browserless) -> None:
    await _fill(quiet.app, 1, 60)  # 60 customer.created events, more than a page
    for path in ("/dashboard/events", "/dashboard/events?type=customer.*", "/dashboard/events?type=customer.created"):
        with recorded(quiet.app) as seen:
            response = await admin.get(path)
        assert response.status_code == 200
        reads = [sql for sql in seen["statements"] if re.search(r"\bFROM events\b", sql)]
        assert len(reads) == 1, (path, reads)
        listed = reads[0].split(" FROM ", 1)[0]
        assert "events.data" not in listed and "events.metadata" not in listed, listed
        assert response.text.count('<a class="mono" href="/dashboard/events/evt_') == 50
        assert "before=" in response.text


async def test_the_overview_counts_pending_deliveries_in_one_statement(quiet: Server, admin: Browserless) -> None:
    ids = await _fill(quiet.app, 3, 4)  # no worker: 4 events to each of 3 endpoints wait, pending
    async with quiet.app.db.read() as conn:
        pending = await conn.scalar(
            sa.select(sa.func.count()).where(
                webhook_deliveries.c.status == "pending", webhook_deliveries.c.endpoint_id.in_(ids)
            )
        )
    assert pending == 12
    with recorded(quiet.app) as seen:
        response = await admin.get("/dashboard/")
    assert response.status_code == 200
    counts = [sql for sql in seen["statements"] if "webhook_deliveries" in sql]
    assert len(counts) == 1, counts
    card = response.text.split("Pending deliveries", 1)[1].split("</div></div>", 1)[0]
    assert '<div class="stat">12</div>' in card and "oldest waiting" in card, card


@pytest.mark.parametrize("path", ["/dashboard/events", "/dashboard/events?type=customer.*", "/dashboard/"])
async def test_pages_leave_little_cyclic_garbage(quiet: Server, admin: Browserless, path: str) -> None:
    """A page's objects are freed as it ends, not left in reference cycles for the collector:
    fewer collections, and shorter ones (a full one paused pages 50-100 ms on a busy machine).
    Macros imported `with context` tied each render's context, rows and all, into a cycle, and
    the `customer.*` union and the overview's pending query were built anew per request (~300,
    ~790 and ~450 objects a request)."""
    await _fill(quiet.app, 3, 60)
    await admin.get(path)
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            assert (await admin.get(path)).status_code == 200
        per_request = gc.collect() / 10
    finally:
        gc.enable()
    assert per_request < 150, per_request


async def test_the_events_list_filters_by_object_and_time(quiet: Server, admin: Browserless) -> None:
    await _fill(quiet.app, 0, 3)
    listed = (await admin.get("/dashboard/events")).text
    ids = re.findall(r'href="/dashboard/events\?object_id=(cus_[A-Za-z0-9]+)"', listed)
    assert len(set(ids)) == 3
    one = (await admin.get(f"/dashboard/events?object_id={ids[0]}")).text.split("<tbody>")[1]
    assert ids[0] in one and ids[1] not in one and ids[2] not in one
    earlier, later = (time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + hours * 3600)) for hours in (-2, 2))
    within = (await admin.get(f"/dashboard/events?since={earlier}&until={later}&type=customer.*")).text
    assert all(i in within for i in ids)
    before = (await admin.get(f"/dashboard/events?until={earlier}")).text
    assert "No events match these filters" in before


async def test_a_read_page_records_a_stale_session_as_used(quiet: Server, admin: Browserless) -> None:
    """`last_seen` is still written once a minute, after the page's read connection is back."""
    long_ago = int(time.time()) - 120
    async with quiet.app.db.transaction() as tx:
        await tx.conn.execute(operator_sessions.update().values(last_seen=long_ago))
    assert (await admin.get("/dashboard/events")).status_code == 200
    for _ in range(100):
        async with quiet.app.db.read() as conn:
            seen = await conn.scalar(sa.select(sa.func.min(operator_sessions.c.last_seen)))
        if seen != long_ago:
            break
        await asyncio.sleep(0.02)
    assert seen is not None and seen >= long_ago + 100

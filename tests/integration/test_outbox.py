"""The transactional outbox on real SQLite and PostgreSQL: events and deliveries commit together."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.db.schema import events, webhook_deliveries
from paywire.events import log as event_log
from paywire.events.log import NewEvent
from paywire.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from paywire.webhooks import endpoints


class Boom(Exception):
    pass


async def _endpoint(app: PaywireApp, enabled: list[str], *, livemode: bool = False) -> str:
    async with app.db.transaction() as tx:
        created = await endpoints.create(
            tx,
            WebhookEndpointCreate(url="http://127.0.0.1:9/hook", enabled_events=enabled),
            livemode=livemode,
            now=time.time(),
        )
    return str(created["id"])


async def _count(app: PaywireApp, table: sa.Table) -> int:
    async with app.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_append_writes_events_and_one_delivery_per_matching_endpoint(paywire: PaywireApp) -> None:
    everything = await _endpoint(paywire, ["*"])
    invoices = await _endpoint(paywire, ["invoice.paid"])
    await _endpoint(paywire, ["refund.succeeded"])
    await _endpoint(paywire, ["*"], livemode=True)  # other mode: never matched
    disabled = await _endpoint(paywire, ["*"])
    async with paywire.db.transaction() as tx:
        await endpoints.update(tx, disabled, WebhookEndpointUpdate(status="disabled"), livemode=False, now=time.time())

    async with paywire.db.transaction() as tx:
        written = await event_log.append(
            tx,
            [NewEvent("invoice.paid", {"id": "in_1"}), NewEvent("customer.created", {"id": "cus_1"})],
            livemode=False,
            now=time.time(),
        )
    assert [e["pending_webhooks"] for e in written] == [2, 1]
    async with paywire.db.read() as conn:
        rows = (await conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.seq))).all()
        seqs = (await conn.execute(sa.select(events.c.id).order_by(events.c.seq))).scalars().all()
    assert {(r.event_id, r.endpoint_id) for r in rows} == {
        (written[0]["id"], everything),
        (written[0]["id"], invoices),
        (written[1]["id"], everything),
    }
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    assert seqs == [written[0]["id"], written[1]["id"]]  # emission order is log order


async def test_a_rolled_back_transaction_leaves_neither_events_nor_deliveries(paywire: PaywireApp) -> None:
    await _endpoint(paywire, ["*"])
    with pytest.raises(Boom):
        async with paywire.db.transaction() as tx:
            await event_log.append(tx, [NewEvent("invoice.paid", {"id": "in_1"})], livemode=False, now=time.time())
            raise Boom
    assert await _count(paywire, events) == 0
    assert await _count(paywire, webhook_deliveries) == 0


async def test_a_failing_api_write_leaves_nothing(paywire: PaywireApp) -> None:
    """A price for a product that does not exist fails after validation: no event, no row."""
    from paywire.billing import products
    from paywire.errors import NotFound
    from paywire.schemas import PriceCreate

    with pytest.raises(NotFound):
        async with paywire.db.transaction() as tx:
            await products.create_price(
                tx,
                paywire.billing.call(False),
                PriceCreate(product_id="prod_missing", unit_amount="5.00", currency="usd"),
            )
    assert await _count(paywire, events) == 0


async def test_log_order_is_commit_order_under_concurrency(paywire: PaywireApp) -> None:
    """A reader paging by seq must never see a later seq commit before an earlier one."""
    first_appended = asyncio.Event()

    async def slow() -> str:
        async with paywire.db.transaction() as tx:
            [event] = await event_log.append(
                tx, [NewEvent("invoice.paid", {"id": "in_slow"})], livemode=False, now=time.time()
            )
            first_appended.set()
            await asyncio.sleep(0.3)
            return str(event["id"])

    async def fast() -> str:
        await first_appended.wait()
        async with paywire.db.transaction() as tx:
            [event] = await event_log.append(
                tx, [NewEvent("invoice.paid", {"id": "in_fast"})], livemode=False, now=time.time()
            )
            return str(event["id"])

    reader_saw: list[list[str]] = []

    async def reader() -> None:
        for _ in range(40):
            async with paywire.db.read() as conn:
                reader_saw.append([r.id for r in await event_log.read_after(conn, 0, livemode=False)])
            await asyncio.sleep(0.01)

    slow_id, fast_id, _ = await asyncio.gather(slow(), fast(), reader())
    async with paywire.db.read() as conn:
        final = [r.id for r in await event_log.read_after(conn, 0, livemode=False)]
    assert final == [slow_id, fast_id]
    # Every snapshot a reader took is a prefix of the final order: nothing appeared out of order.
    assert all(final[: len(seen)] == seen for seen in reader_saw)

"""The baseline of bench/api_writes.py: a bare FastAPI + SQLAlchemy app doing the same inserts.

    python bench/bare_api.py --database-url URL --port N

`POST /api/customers` inserts the customer row and its `customer.created` event row into
Paywire's own (migrated) tables, in one transaction, with the same connection settings Paywire
uses on SQLite (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, one writer connection). No authentication, no
idempotency, no webhook fan-out: what a hand-written endpoint would do at the least.

`POST /api/subscriptions` (a subscription in its trial: nothing is charged) does in one
transaction what Paywire writes for one: it reads the customer and the prices (checked as
Paywire checks them: they exist in this mode, are active, recurring, listed once, of one
currency and one interval), inserts the subscription row, its two `billing_jobs` rows
(`trial_will_end`, `trial_end`) and its two event rows (`customer.subscription.created`,
`customer.subscription.trial_start`). No webhook deliveries: the benchmark enables no endpoint,
so Paywire writes none either. A customer on a test clock and a subscription without a trial
are refused (the benchmark makes neither).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from paywire.billing.money import format_amount
from paywire.clock import iso
from paywire.db.engine import async_url
from paywire.db.schema import billing_jobs, customers, events, prices, subscriptions
from paywire.ids import new_id

API_VERSION = "2026-11-26"
DAY = 86400
TRIAL_NOTICE = 3 * DAY  # Paywire's `trial_will_end` job is due this long before the trial ends


class CustomerIn(BaseModel):
    name: str | None = None
    email: str | None = None


class ItemIn(BaseModel):
    price_id: str
    quantity: int = Field(1, ge=1)


class SubscriptionIn(BaseModel):
    customer_id: str
    items: list[ItemIn] = Field(min_length=1, max_length=20)
    metadata: dict[str, str] | None = None


def event_row(kind: str, obj: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        "id": new_id("evt"),
        "livemode": False,
        "type": kind,
        "api_version": API_VERSION,
        "object_type": obj["object"],
        "object_id": obj["id"],
        "data": {"object": obj, "previous_attributes": {}},
        "request_id": None,
        "idempotency_key": None,
        "metadata": {},
        "created": now,
    }


async def checked_prices(conn: AsyncConnection, wanted: list[ItemIn]) -> list[sa.RowMapping]:
    """The items' price rows, in the items' order, refused unless Paywire would take them."""
    ids = [item.price_id for item in wanted]
    query = sa.select(prices).where(prices.c.id.in_(ids), prices.c.livemode.is_(False))
    by_id = {row["id"]: row for row in (await conn.execute(query)).mappings()}
    rows = [by_id[price_id] for price_id in ids if price_id in by_id]
    if len(set(ids)) != len(ids) or len(rows) != len(ids):
        raise HTTPException(400, "every price must exist and be listed once")
    if not all(row["active"] and row["type"] == "recurring" for row in rows):
        raise HTTPException(400, "every price must be active and recurring")
    if len({(row["currency"], row["recurring_interval"], row["recurring_interval_count"]) for row in rows}) > 1:
        raise HTTPException(400, "the prices must share one currency and one interval")
    return rows


def new_trial(customer_id: str, rows: list[sa.RowMapping], body: SubscriptionIn, now: int) -> dict[str, Any]:
    """The subscription's row, trialing for the longest of its prices' trials."""
    trial_end = now + max(row["trial_period_days"] or 0 for row in rows) * DAY
    if trial_end == now:
        raise HTTPException(400, "this app makes trialing subscriptions only")
    stored = [
        {"id": new_id("si"), "price_id": row["id"], "quantity": item.quantity,
         "unit_amount": int(row["unit_amount"]), "currency": row["currency"]}
        for row, item in zip(rows, body.items, strict=True)
    ]  # fmt: skip
    return {
        "id": new_id("sub"), "livemode": False, "customer_id": customer_id, "status": "trialing",
        "items": stored, "currency": rows[0]["currency"], "interval": rows[0]["recurring_interval"],
        "interval_count": rows[0]["recurring_interval_count"], "default_payment_method": None,
        "billing_cycle_anchor": trial_end, "current_period_start": now, "current_period_end": trial_end,
        "trial_start": now, "trial_end": trial_end, "cancel_at_period_end": False, "cancel_at": None,
        "canceled_at": None, "ended_at": None, "paused_at": None, "latest_invoice_id": None,
        "checkout_session_id": None, "test_clock_id": None, "metadata": body.metadata or {},
        "created": now, "updated": now,
    }  # fmt: skip


def rendered(sub: dict[str, Any]) -> dict[str, Any]:
    """The subscription as Paywire's API (and its events) show it."""
    shown = {k: v for k, v in sub.items() if k not in ("items", "interval", "interval_count", "updated")}
    items = [
        {"id": i["id"], "object": "subscription_item", "price_id": i["price_id"], "quantity": i["quantity"],
         "unit_amount": format_amount(i["unit_amount"], i["currency"])}
        for i in sub["items"]
    ]  # fmt: skip
    recurring = {"interval": sub["interval"], "interval_count": sub["interval_count"]}
    return {
        **shown,
        "object": "subscription",
        "created_at": iso(sub["created"]),
        "items": items,
        "recurring": recurring,
    }


def trial_jobs(sub: dict[str, Any], now: int) -> list[dict[str, Any]]:
    """The `billing_jobs` rows Paywire schedules for a new trialing subscription."""
    due = {"trial_will_end": max(sub["trial_start"], sub["trial_end"] - TRIAL_NOTICE), "trial_end": sub["trial_end"]}
    return [
        {"livemode": False, "kind": kind, "object_id": sub["id"], "due": at, "payload": {}, "test_clock_id": None,
         "status": "pending", "attempts": 0, "created": now, "updated": now}
        for kind, at in due.items()
    ]  # fmt: skip


def make_app(url: str) -> FastAPI:
    sqlite = url.startswith("sqlite")
    # SQLite has one writer at a time: one pooled connection queues the writes in the pool instead
    # of in busy_timeout's sleep-and-retry (which gave a p99 near a second with ten connections).
    pool = {"pool_size": 1, "max_overflow": 0} if sqlite else {"pool_size": 10, "max_overflow": 10}
    engine = create_async_engine(async_url(url), **pool)
    if sqlite:

        @sa.event.listens_for(engine.sync_engine, "connect")
        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine.sync_engine, "begin")
        def begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    app = FastAPI()

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/customers")
    async def create_customer(body: CustomerIn) -> dict[str, Any]:
        now = int(time.time())
        row = {
            "id": new_id("cus"),
            "livemode": False,
            "email": body.email,
            "name": body.name,
            "description": None,
            "metadata": {},
            "test_clock_id": None,
            "created": now,
            "updated": now,
        }
        created = {**row, "object": "customer"}
        async with engine.begin() as conn:
            await conn.execute(customers.insert(), row)
            await conn.execute(
                events.insert(),
                {
                    "id": new_id("evt"),
                    "livemode": False,
                    "type": "customer.created",
                    "api_version": "2026-11-26",
                    "object_type": "customer",
                    "object_id": row["id"],
                    "data": {"object": created},
                    "request_id": None,
                    "idempotency_key": None,
                    "metadata": {},
                    "created": now,
                },
            )
        return created

    @app.post("/api/subscriptions")
    async def create_subscription(body: SubscriptionIn) -> dict[str, Any]:
        now = int(time.time())
        async with engine.begin() as conn:
            query = sa.select(customers).where(customers.c.id == body.customer_id, customers.c.livemode.is_(False))
            customer = (await conn.execute(query)).mappings().first()
            if customer is None or customer["test_clock_id"] is not None:
                raise HTTPException(400, "no such customer (or it is on a test clock)")
            sub = new_trial(customer["id"], await checked_prices(conn, body.items), body, now)
            shown = rendered(sub)
            await conn.execute(subscriptions.insert(), sub)
            await conn.execute(billing_jobs.insert(), trial_jobs(sub, now))
            for kind in ("created", "trial_start"):  # one at a time: `seq` follows the order, as in Paywire
                await conn.execute(events.insert(), event_row(f"customer.subscription.{kind}", shown, now))
        return shown

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.database_url), host="127.0.0.1", port=args.port, log_level="warning")

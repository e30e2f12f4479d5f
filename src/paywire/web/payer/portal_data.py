"""What the customer portal reads: one customer's subscriptions, invoices, payments and refunds
(every query filtered by that customer and mode), and the read-only preview of a plan change.

The preview runs the engine's own `subscriptions.proration_lines` on the same inputs the update
will use, so the invoice an upgrade creates equals the preview to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.billing import items, subscriptions
from paywire.billing.statuses import SubscriptionStatus
from paywire.db.schema import customers, invoice_items, invoices, payment_intents, prices, products, refunds
from paywire.db.schema import subscriptions as subscriptions_table
from paywire.errors import NotFound

LIMIT = 50
CHANGEABLE = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})


@dataclass(frozen=True)
class Owner:
    """Whose portal this is: every read is filtered by both."""

    customer_id: str
    livemode: bool


async def customer(conn: AsyncConnection, owner: Owner) -> sa.RowMapping:
    row = (
        (
            await conn.execute(
                sa.select(customers).where(customers.c.id == owner.customer_id, customers.c.livemode == owner.livemode)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("no such customer")
    return row


async def subscription(conn: AsyncConnection, owner: Owner, subscription_id: str) -> dict[str, Any]:
    """One of the owner's subscriptions; another customer's is a 404 like a missing one."""
    table = subscriptions_table
    row = (
        (
            await conn.execute(
                sa.select(table).where(
                    table.c.id == subscription_id,
                    table.c.customer_id == owner.customer_id,
                    table.c.livemode == owner.livemode,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no such subscription: {subscription_id!r}")
    return dict(row)


async def subscription_list(conn: AsyncConnection, owner: Owner) -> list[dict[str, Any]]:
    table = subscriptions_table
    rows = await conn.execute(
        sa.select(table)
        .where(table.c.customer_id == owner.customer_id, table.c.livemode == owner.livemode)
        .order_by(table.c.seq.desc())
        .limit(LIMIT)
    )
    return [dict(r) for r in rows.mappings()]


async def price_rows(conn: AsyncConnection, livemode: bool, price_ids: list[str]) -> dict[str, sa.RowMapping]:
    """Prices (with their product's name) by id."""
    if not price_ids:
        return {}
    rows = await conn.execute(
        sa.select(prices, products.c.name.label("product_name"))
        .join(products, products.c.id == prices.c.product_id)
        .where(prices.c.id.in_(price_ids), prices.c.livemode == livemode)
    )
    return {row["id"]: row for row in rows.mappings()}


async def pending_amount(conn: AsyncConnection, subscription_id: str) -> int:
    """Proration lines waiting for the subscription's next invoice (credits are negative)."""
    total = await conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(invoice_items.c.amount), 0)).where(
            invoice_items.c.subscription_id == subscription_id, invoice_items.c.invoice_id.is_(None)
        )
    )
    return int(total or 0)


async def alternative_prices(conn: AsyncConnection, sub: dict[str, Any]) -> list[sa.RowMapping]:
    """The other active recurring prices of the subscription's product with its currency and
    interval (what `subscriptions.update` accepts); only single-item subscriptions switch."""
    if sub["status"] not in CHANGEABLE or len(sub["items"]) != 1:
        return []
    current = (await price_rows(conn, sub["livemode"], [sub["items"][0]["price_id"]])).get(sub["items"][0]["price_id"])
    if current is None:
        return []
    rows = await conn.execute(
        sa.select(prices, products.c.name.label("product_name"))
        .join(products, products.c.id == prices.c.product_id)
        .where(
            prices.c.product_id == current["product_id"],
            prices.c.livemode == sub["livemode"],
            prices.c.active.is_(True),
            prices.c.type == "recurring",
            prices.c.currency == sub["currency"],
            prices.c.recurring_interval == sub["interval"],
            prices.c.recurring_interval_count == sub["interval_count"],
            prices.c.id != current["id"],
        )
        .order_by(prices.c.unit_amount)
    )
    return list(rows.mappings())


@dataclass(frozen=True)
class Preview:
    lines: list[dict[str, Any]]
    due_now: int  # charged at once (an upgrade of an active subscription)
    credit: int  # left as credit on the next invoice (a downgrade)
    new_recurring: int
    new_items: list[dict[str, Any]]


def preview_change(sub: dict[str, Any], new_price: sa.RowMapping, now: float) -> Preview:
    """What switching `sub` to `new_price` costs at `now`: the same computation as
    `subscriptions.update` with `create_prorations`, without writing anything."""
    item = sub["items"][0]
    new_items = items.subscription_items(
        [items.PricedItem(new_price, int(item["quantity"]))], sub["items"], [item["id"]]
    )
    period = (int(sub["current_period_start"]), int(sub["current_period_end"]))
    lines: list[dict[str, Any]] = []
    if sub["status"] == SubscriptionStatus.ACTIVE and now < period[1]:
        lines = subscriptions.proration_lines(sub["items"], new_items, period, int(now))
    net = sum(int(line["amount"]) for line in lines)
    upgrade = bool(lines) and items.recurring_amount(new_items) > items.recurring_amount(sub["items"])
    return Preview(
        lines=lines,
        due_now=net if upgrade else 0,
        credit=-net if lines and not upgrade and net < 0 else 0,
        new_recurring=items.recurring_amount(new_items),
        new_items=new_items,
    )


async def invoice(conn: AsyncConnection, owner: Owner, invoice_id: str) -> sa.RowMapping:
    row = (
        (
            await conn.execute(
                sa.select(invoices).where(
                    invoices.c.id == invoice_id,
                    invoices.c.customer_id == owner.customer_id,
                    invoices.c.livemode == owner.livemode,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no such invoice: {invoice_id!r}")
    return row


async def invoice_list(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(invoices)
        .where(invoices.c.customer_id == owner.customer_id, invoices.c.livemode == owner.livemode)
        .order_by(invoices.c.seq.desc())
        .limit(LIMIT)
    )
    return list(rows.mappings())


async def payment_list(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(payment_intents)
        .where(
            payment_intents.c.customer_id == owner.customer_id,
            payment_intents.c.livemode == owner.livemode,
            payment_intents.c.charge_attempts > 0,  # a payment was attempted
        )
        .order_by(payment_intents.c.seq.desc())
        .limit(LIMIT)
    )
    return list(rows.mappings())


async def refund_list(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(refunds)
        .join(payment_intents, payment_intents.c.id == refunds.c.payment_intent_id)
        .where(payment_intents.c.customer_id == owner.customer_id, refunds.c.livemode == owner.livemode)
        .order_by(refunds.c.seq.desc())
        .limit(LIMIT)
    )
    return list(rows.mappings())

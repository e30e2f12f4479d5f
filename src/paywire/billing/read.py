"""What the pages read of billing objects: the dashboard's lists and detail pages, the customer
portal's (every query filtered by its customer and mode) and the hosted checkout's.

Reads only, no state changes: the engine modules of each object kind change them. The rows come
back as stored; each kind's `render` turns them into API objects. The portal's preview of a plan
change runs the engine's own `subscriptions.proration_lines` on the same inputs the update will
use, so the invoice an upgrade creates equals the preview to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import objects
from paywire.billing import clock_advance, customers, invoices, items, payments, refunds, subscriptions
from paywire.billing.statuses import SubscriptionStatus
from paywire.db.schema import checkout_sessions, invoice_items, prices, products
from paywire.db.schema import customers as customers_t
from paywire.db.schema import invoices as invoices_t
from paywire.db.schema import payment_intents as payments_t
from paywire.db.schema import refunds as refunds_t
from paywire.db.schema import subscriptions as subscriptions_t
from paywire.db.schema import test_clocks as clocks_t
from paywire.errors import NotFound
from paywire.pagination import Cursor, KeysetPage, keyset

RELATED_LIMIT = 50  # rows of a related list on a detail page
PORTAL_LIMIT = 50  # rows of each list in the customer portal
CHANGEABLE = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})

# --- the dashboard: one object ----------------------------------------------------------------


async def customer(conn: AsyncConnection, customer_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, customers_t, customer_id, livemode)


async def subscription(conn: AsyncConnection, subscription_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, subscriptions_t, subscription_id, livemode)


async def invoice(conn: AsyncConnection, invoice_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, invoices_t, invoice_id, livemode)


async def payment(conn: AsyncConnection, payment_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, payments_t, payment_id, livemode)


async def refund(conn: AsyncConnection, refund_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, refunds_t, refund_id, livemode)


async def test_clock(conn: AsyncConnection, clock_id: str, livemode: bool) -> sa.RowMapping:
    return await objects.fetch(conn, clocks_t, clock_id, livemode)


# --- the dashboard: keyset pages of each kind -------------------------------------------------


async def customers_page(conn: AsyncConnection, livemode: bool, cursor: Cursor, *, email: str | None) -> KeysetPage:
    return await keyset(conn, customers.listing(livemode, email=email), customers_t.c.seq, cursor)


async def subscriptions_page(
    conn: AsyncConnection, livemode: bool, cursor: Cursor, *, status: str | None
) -> KeysetPage:
    return await keyset(conn, subscriptions.listing(livemode, status=status), subscriptions_t.c.seq, cursor)


async def invoices_page(conn: AsyncConnection, livemode: bool, cursor: Cursor, *, status: str | None) -> KeysetPage:
    return await keyset(conn, invoices.listing(livemode, status=status), invoices_t.c.seq, cursor)


async def payments_page(conn: AsyncConnection, livemode: bool, cursor: Cursor, *, status: str | None) -> KeysetPage:
    return await keyset(conn, payments.listing(livemode, status=status), payments_t.c.seq, cursor)


async def refunds_page(conn: AsyncConnection, livemode: bool, cursor: Cursor) -> KeysetPage:
    return await keyset(conn, refunds.listing(livemode), refunds_t.c.seq, cursor)


async def test_clocks_page(conn: AsyncConnection, livemode: bool, cursor: Cursor) -> KeysetPage:
    return await keyset(conn, clock_advance.listing(livemode), clocks_t.c.seq, cursor)


# --- the dashboard: related lists of a detail page (newest first, `RELATED_LIMIT` rows) -------


async def _related(conn: AsyncConnection, query: sa.Select[Any]) -> list[sa.RowMapping]:
    return list((await conn.execute(query.limit(RELATED_LIMIT))).mappings())


async def subscriptions_of_customer(conn: AsyncConnection, livemode: bool, customer_id: str) -> list[sa.RowMapping]:
    query = subscriptions.listing(livemode, customer_id=customer_id).order_by(subscriptions_t.c.seq.desc())
    return await _related(conn, query)


async def payments_of_customer(conn: AsyncConnection, livemode: bool, customer_id: str) -> list[sa.RowMapping]:
    return await _related(conn, payments.listing(livemode, customer_id=customer_id).order_by(payments_t.c.seq.desc()))


async def invoices_of(
    conn: AsyncConnection, livemode: bool, *, customer_id: str | None = None, subscription_id: str | None = None
) -> list[sa.RowMapping]:
    query = invoices.listing(livemode, customer_id=customer_id, subscription_id=subscription_id)
    return await _related(conn, query.order_by(invoices_t.c.seq.desc()))


async def refunds_of_payment(conn: AsyncConnection, livemode: bool, payment_id: str) -> list[sa.RowMapping]:
    query = refunds.listing(livemode, payment_intent_id=payment_id).order_by(refunds_t.c.seq.desc())
    return await _related(conn, query)


async def customers_on_clock(conn: AsyncConnection, livemode: bool, clock_id: str) -> list[sa.RowMapping]:
    return await _related(conn, customers.listing(livemode).where(customers_t.c.test_clock_id == clock_id))


async def objects_on_clock(conn: AsyncConnection, clock_id: str, livemode: bool) -> list[str]:
    """The ids of the customers, subscriptions, invoices and payments on this test clock."""
    ids: list[str] = []
    for table in (customers_t, subscriptions_t, invoices_t, payments_t):
        ids += list(
            (
                await conn.execute(
                    sa.select(table.c.id).where(table.c.test_clock_id == clock_id, table.c.livemode == livemode)
                )
            ).scalars()
        )
    return ids


# --- prices, with their product's name --------------------------------------------------------


async def named_prices(
    conn: AsyncConnection, price_ids: list[str], livemode: bool | None = None
) -> dict[str, sa.RowMapping]:
    """Prices (with their product's name) by id; of one mode if `livemode` is given (the checkout
    page's session names its prices, in its own mode, already)."""
    if not price_ids:
        return {}
    query = (
        sa.select(prices, products.c.name.label("product_name"))
        .join(products, products.c.id == prices.c.product_id)
        .where(prices.c.id.in_(price_ids))
    )
    if livemode is not None:
        query = query.where(prices.c.livemode == livemode)
    return {row["id"]: row for row in (await conn.execute(query)).mappings()}


# --- the customer portal ----------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Whose portal this is: every read is filtered by both."""

    customer_id: str
    livemode: bool


async def portal_customer(conn: AsyncConnection, owner: Owner) -> sa.RowMapping:
    row = (
        (
            await conn.execute(
                sa.select(customers_t).where(
                    customers_t.c.id == owner.customer_id, customers_t.c.livemode == owner.livemode
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("no such customer")
    return row


async def _owned(conn: AsyncConnection, table: sa.Table, owner: Owner, object_id: str, noun: str) -> sa.RowMapping:
    """One of the owner's objects in `table`; another customer's is a 404 like a missing one."""
    query = sa.select(table).where(
        table.c.id == object_id, table.c.customer_id == owner.customer_id, table.c.livemode == owner.livemode
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no such {noun}: {object_id!r}")
    return row


async def portal_subscription(conn: AsyncConnection, owner: Owner, subscription_id: str) -> dict[str, Any]:
    return dict(await _owned(conn, subscriptions_t, owner, subscription_id, "subscription"))


async def portal_subscriptions(conn: AsyncConnection, owner: Owner) -> list[dict[str, Any]]:
    table = subscriptions_t
    rows = await conn.execute(
        sa.select(table)
        .where(table.c.customer_id == owner.customer_id, table.c.livemode == owner.livemode)
        .order_by(table.c.seq.desc())
        .limit(PORTAL_LIMIT)
    )
    return [dict(r) for r in rows.mappings()]


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
    price_id = sub["items"][0]["price_id"]
    current = (await named_prices(conn, [price_id], sub["livemode"])).get(price_id)
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


async def portal_invoice(conn: AsyncConnection, owner: Owner, invoice_id: str) -> sa.RowMapping:
    return await _owned(conn, invoices_t, owner, invoice_id, "invoice")


async def portal_invoices(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(invoices_t)
        .where(invoices_t.c.customer_id == owner.customer_id, invoices_t.c.livemode == owner.livemode)
        .order_by(invoices_t.c.seq.desc())
        .limit(PORTAL_LIMIT)
    )
    return list(rows.mappings())


async def portal_payments(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(payments_t)
        .where(
            payments_t.c.customer_id == owner.customer_id,
            payments_t.c.livemode == owner.livemode,
            payments_t.c.charge_attempts > 0,  # a payment was attempted
        )
        .order_by(payments_t.c.seq.desc())
        .limit(PORTAL_LIMIT)
    )
    return list(rows.mappings())


async def portal_refunds(conn: AsyncConnection, owner: Owner) -> list[sa.RowMapping]:
    rows = await conn.execute(
        sa.select(refunds_t)
        .join(payments_t, payments_t.c.id == refunds_t.c.payment_intent_id)
        .where(payments_t.c.customer_id == owner.customer_id, refunds_t.c.livemode == owner.livemode)
        .order_by(refunds_t.c.seq.desc())
        .limit(PORTAL_LIMIT)
    )
    return list(rows.mappings())


# --- the hosted checkout ----------------------------------------------------------------------


async def checkout_session(conn: AsyncConnection, session_id: str) -> dict[str, Any] | None:
    """The session's row (its id is the page's secret: ~83 random bits), in either mode."""
    row = (
        (await conn.execute(sa.select(checkout_sessions).where(checkout_sessions.c.id == session_id)))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def intent_status(conn: AsyncConnection, payment_intent_id: str) -> str | None:
    status = await conn.scalar(sa.select(payments_t.c.status).where(payments_t.c.id == payment_intent_id))
    return str(status) if status is not None else None


async def intent_action(conn: AsyncConnection, payment_intent_id: str) -> Any:
    """`(status, next_action, payment_method)` of the payment intent, or None."""
    return (
        await conn.execute(
            sa.select(payments_t.c.status, payments_t.c.next_action, payments_t.c.payment_method).where(
                payments_t.c.id == payment_intent_id
            )
        )
    ).first()


async def intent_error(conn: AsyncConnection, payment_intent_id: str) -> Any:
    """The payment intent's `last_payment_error` (a dict, or None)."""
    return await conn.scalar(sa.select(payments_t.c.last_payment_error).where(payments_t.c.id == payment_intent_id))

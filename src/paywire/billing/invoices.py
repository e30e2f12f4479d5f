"""Invoices: lines (period charges and proration lines) and their totals.

An invoice is created open (finalized) and becomes paid, void or uncollectible. `total` is
always the exact sum of its lines; when credits exceed charges the total is negative, nothing is
due, and the rest is carried to the next invoice as a pending credit line.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import money
from paywire.billing.statuses import InvoiceStatus
from paywire.db.engine import Tx
from paywire.db.schema import invoice_items, invoices
from paywire.ids import new_id


def render_line(line: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "id": line["id"],
        "object": "line_item",
        "description": line["description"],
        "price_id": line.get("price_id"),
        "quantity": line.get("quantity"),
        "amount": money.format_amount(int(line["amount"]), currency),
        "currency": currency,
        "proration": bool(line.get("proration")),
        "period": line["period"],
    }


def render(m: Any) -> dict[str, Any]:
    currency = m["currency"]

    def fmt(amount: int) -> str:
        return money.format_amount(int(amount), currency)

    return {
        **objects.common_fields(m, "invoice"),
        "customer_id": m["customer_id"],
        "subscription_id": m["subscription_id"],
        "status": m["status"],
        "billing_reason": m["billing_reason"],
        "currency": currency,
        "lines": [render_line(line, currency) for line in m["lines"]],
        "subtotal": fmt(m["subtotal"]),
        "total": fmt(m["total"]),
        "amount_due": fmt(m["amount_due"]),
        "amount_paid": fmt(m["amount_paid"]),
        "amount_remaining": fmt(m["amount_due"] - m["amount_paid"]),
        "attempt_count": m["attempt_count"],
        "next_payment_attempt": m["next_payment_attempt"],
        "payment_intent_id": m["payment_intent_id"],
        "period_start": m["period_start"],
        "period_end": m["period_end"],
        "paid_at": m["paid_at"],
        "test_clock_id": m["test_clock_id"],
    }


def build(
    *,
    livemode: bool,
    customer_id: str,
    subscription_id: str | None,
    currency: str,
    lines: list[dict[str, Any]],
    billing_reason: str,
    period: tuple[int, int],
    clock_id: str | None,
    now: float,
) -> dict[str, Any]:
    """An open invoice's row values (not yet inserted)."""
    total = sum(int(line["amount"]) for line in lines)
    return {
        "id": new_id("in"),
        "livemode": livemode,
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "status": InvoiceStatus.OPEN,
        "billing_reason": billing_reason,
        "currency": currency,
        "lines": lines,
        "subtotal": total,
        "total": total,
        "amount_due": max(total, 0),
        "amount_paid": 0,
        "attempt_count": 0,
        "next_payment_attempt": None,
        "payment_intent_id": None,
        "period_start": period[0],
        "period_end": period[1],
        "paid_at": None,
        "test_clock_id": clock_id,
        "metadata": {},
        "created": int(now),
        "updated": int(now),
    }


async def take_pending_lines(tx: Tx, subscription_id: str, invoice_id: str) -> list[dict[str, Any]]:
    """The subscription's pending proration lines, now attached to `invoice_id`."""
    rows = (await read_pending_lines(tx, [subscription_id])).get(subscription_id, [])
    await attach_lines(tx, {seq: invoice_id for seq, _ in rows})
    return [line for _, line in rows]


async def read_pending_lines(tx: Tx, subscription_ids: list[str]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each subscription's pending lines as (seq, line), oldest first (one query for many)."""
    rows = (
        await tx.conn.execute(
            sa.select(invoice_items.c.seq, invoice_items.c.subscription_id, invoice_items.c.line)
            .where(invoice_items.c.subscription_id.in_(subscription_ids), invoice_items.c.invoice_id.is_(None))
            .order_by(invoice_items.c.seq)
        )
    ).all()
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for row in rows:
        found.setdefault(row.subscription_id, []).append((int(row.seq), dict(row.line)))
    return found


async def attach_lines(tx: Tx, invoice_of: dict[int, str]) -> None:
    """Attach pending lines (by seq) to their invoices: one statement per invoice."""
    by_invoice: dict[str, list[int]] = {}
    for seq, invoice_id in invoice_of.items():
        by_invoice.setdefault(invoice_id, []).append(seq)
    for invoice_id, seqs in by_invoice.items():
        await tx.conn.execute(invoice_items.update().where(invoice_items.c.seq.in_(seqs)).values(invoice_id=invoice_id))


async def add_pending_lines(
    tx: Tx, subscription_id: str, lines: list[dict[str, Any]], *, livemode: bool, now: float
) -> None:
    """Lines for the subscription's next invoice (a downgrade's credit, carried credit)."""
    for line in lines:
        await tx.conn.execute(
            invoice_items.insert().values(
                id=new_id("ii"),
                livemode=livemode,
                subscription_id=subscription_id,
                invoice_id=None,
                line=line,
                amount=int(line["amount"]),
                created=int(now),
            )
        )


async def carry_credit(tx: Tx, invoice: dict[str, Any], *, now: float) -> None:
    """A negative total: carry the credit to the subscription's next invoice."""
    if invoice["total"] >= 0 or invoice["subscription_id"] is None:
        return
    line = {
        "id": new_id("il"),
        "description": f"Credit carried forward from {invoice['id']}",
        "amount": invoice["total"],
        "proration": False,
        "period": {"start": invoice["period_start"], "end": invoice["period_end"]},
    }
    await add_pending_lines(tx, invoice["subscription_id"], [line], livemode=invoice["livemode"], now=now)


def listing(
    livemode: bool,
    *,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    status: str | None = None,
) -> sa.Select[Any]:
    query = sa.select(invoices).where(invoices.c.livemode == livemode)
    if customer_id:
        query = query.where(invoices.c.customer_id == customer_id)
    if subscription_id:
        query = query.where(invoices.c.subscription_id == subscription_id)
    if status:
        query = query.where(invoices.c.status == status)
    return query

"""Collecting an invoice: create or reuse its payment intent, charge it, record the outcome.

Functions here write rows but do not append events: they return them, so each flow can emit
them in the order the contract's timeline table requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from paywire.billing import invoices, payments
from paywire.billing.runtime import Call
from paywire.billing.statuses import InvoiceStatus, PaymentIntentStatus
from paywire.db.engine import Tx
from paywire.db.schema import invoices as invoices_table
from paywire.db.schema import payment_intents
from paywire.events.log import NewEvent


@dataclass
class Collection:
    invoice: dict[str, Any]
    intent: dict[str, Any] | None
    created: list[NewEvent] = field(default_factory=list)  # invoice.created, payment_intent.created
    outcome: list[NewEvent] = field(default_factory=list)  # payment_intent.*, invoice.paid|payment_failed

    @property
    def paid(self) -> bool:
        return bool(self.invoice["status"] == InvoiceStatus.PAID)


def mark_paid(invoice: dict[str, Any], intent: dict[str, Any] | None, now: float) -> dict[str, Any]:
    return {
        **invoice,
        "status": InvoiceStatus.PAID,
        "amount_paid": invoice["amount_due"],
        "payment_intent_id": intent["id"] if intent else invoice["payment_intent_id"],
        "paid_at": int(now),
        "next_payment_attempt": None,
        "attempt_count": invoice["attempt_count"] + (1 if intent else 0),
        "updated": int(now),
    }


def _outcome(invoice: dict[str, Any], intent: dict[str, Any] | None) -> list[NewEvent]:
    events = []
    if intent is not None:
        events.append(NewEvent(payments.outcome_event(intent), payments.render(intent)))
    if invoice["status"] == InvoiceStatus.PAID:
        events.append(NewEvent("invoice.paid", invoices.render(invoice)))
    else:
        events.append(NewEvent("invoice.payment_failed", invoices.render(invoice)))
    return events


async def _charge_invoice(
    call: Call, invoice: dict[str, Any], intent: dict[str, Any] | None, payment_method: str | None, now: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Charge what is due (nothing due: paid at once, no payment intent). Invoices are charged
    off-session: the customer is not there (renewals, retries, a merchant's call)."""
    if invoice["amount_due"] == 0:
        return mark_paid(invoice, None, now), None
    assert intent is not None
    intent = await payments.charge(call, intent, payment_method, now, off_session=True)
    if intent["status"] == PaymentIntentStatus.SUCCEEDED:
        return mark_paid(invoice, intent, now), intent
    failed = {**invoice, "attempt_count": invoice["attempt_count"] + 1, "updated": int(now)}
    return failed, intent


async def open_and_collect(
    tx: Tx, call: Call, invoice: dict[str, Any], payment_method: str | None, now: float, *, with_pending: bool
) -> Collection:
    """Insert a new invoice (plus the subscription's pending lines) and try to collect it."""
    pending: list[dict[str, Any]] = []
    if with_pending and invoice["subscription_id"]:
        pending = await invoices.take_pending_lines(tx, invoice["subscription_id"], invoice["id"])
    collected = await collect_new(call, invoice, pending, payment_method, now)
    await record_new(tx, collected, now)
    return collected


async def collect_new(
    call: Call, invoice: dict[str, Any], pending: list[dict[str, Any]], payment_method: str | None, now: float
) -> Collection:
    """A new invoice with its `pending` lines added, its payment intent, and the charge's outcome;
    nothing is written (`record_new` writes it; a batch of renewals writes many at once)."""
    return await charge_new(call, open_new(call, invoice, pending, now), payment_method, now)


def open_new(call: Call, invoice: dict[str, Any], pending: list[dict[str, Any]], now: float) -> Collection:
    """`collect_new` up to its charge: the invoice with its `pending` lines, its payment intent
    as built and their `created` events (no outcome yet)."""
    if pending:
        lines = [*invoice["lines"], *pending]
        total = sum(int(line["amount"]) for line in lines)
        invoice = {**invoice, "lines": lines, "subtotal": total, "total": total, "amount_due": max(total, 0)}
    intent = None
    if invoice["amount_due"] > 0:
        intent = payments.build(
            call=call,
            livemode=invoice["livemode"],
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            customer_id=invoice["customer_id"],
            invoice_id=invoice["id"],
            description=f"Invoice {invoice['id']}",
            clock_id=invoice["test_clock_id"],
            now=now,
        )
        invoice = {**invoice, "payment_intent_id": intent["id"]}
    created = [NewEvent("invoice.created", invoices.render(invoice))]
    if intent is not None:
        created.append(NewEvent("payment_intent.created", payments.render(intent)))
    return Collection(invoice, intent, created)


async def charge_new(call: Call, opened: Collection, payment_method: str | None, now: float) -> Collection:
    """The rest of `collect_new`: charge what `open_new` opened. `opened` is left as it was, so a
    batch of renewals can keep it from its first pass to the provider's answer."""
    invoice, intent = await _charge_invoice(call, opened.invoice, opened.intent, payment_method, now)
    return Collection(invoice, intent, list(opened.created), _outcome(invoice, intent))


async def record_new(tx: Tx, collected: Collection, now: float) -> None:
    """Write a `collect_new` outcome: the invoice, its payment intent, any credit carried on."""
    await tx.conn.execute(invoices_table.insert().values(**collected.invoice))
    if collected.intent is not None:
        await payments.write(tx, collected.intent)
    await invoices.carry_credit(tx, collected.invoice, now=now)


async def collect_again(
    tx: Tx, call: Call, invoice_row: sa.RowMapping, payment_method: str | None, now: float
) -> Collection:
    """Another attempt on an open invoice (a dunning retry, `POST /api/invoices/{id}/pay`)."""
    invoice = dict(invoice_row)
    intent: dict[str, Any] | None = None
    if invoice["payment_intent_id"]:
        row = (
            (
                await tx.conn.execute(
                    sa.select(payment_intents).where(payment_intents.c.id == invoice["payment_intent_id"])
                )
            )
            .mappings()
            .first()
        )
        intent = dict(row) if row is not None else None
    invoice, intent = await _charge_invoice(call, invoice, intent, payment_method, now)
    await tx.conn.execute(
        invoices_table.update().where(invoices_table.c.id == invoice["id"]).values(**_without_key(invoice))
    )
    if intent is not None:
        await tx.conn.execute(
            payment_intents.update().where(payment_intents.c.id == intent["id"]).values(**_without_key(intent))
        )
    return Collection(invoice, intent, [], _outcome(invoice, intent))


def _without_key(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in ("seq", "id")}

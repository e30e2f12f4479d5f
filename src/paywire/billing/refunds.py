"""Refunds: full or partial, never more than what a payment intent received.

The payment intent's row is locked while its refundable amount is checked and updated, so two
concurrent refunds cannot together exceed the payment.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import clocks, money
from paywire.billing.runtime import Call
from paywire.billing.schemas import PaymentIntentRefund
from paywire.db.engine import Tx
from paywire.db.schema import payment_intents, refunds
from paywire.errors import InvalidRequest, PaywireError, StateError
from paywire.events.log import NewEvent, append
from paywire.ids import new_id


def render(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "refund"),
        "amount": money.format_amount(int(m["amount"]), m["currency"]),
        "currency": m["currency"],
        "payment_intent_id": m["payment_intent_id"],
        "status": m["status"],
        "reason": m["reason"],
    }


async def create(tx: Tx, call: Call, payment_intent_id: str, params: PaymentIntentRefund) -> dict[str, Any]:
    intent = await objects.fetch(tx.conn, payment_intents, payment_intent_id, call.livemode, lock=True)
    if intent["status"] != "succeeded":
        raise StateError(
            f"payment intent {payment_intent_id!r} is {intent['status']}; only a succeeded one can be refunded"
        )
    currency = intent["currency"]
    try:
        wanted = None if params.amount is None else money.parse_amount(params.amount, currency)
        amount = money.check_refund(
            wanted, int(intent["amount_received"]), int(intent["amount_refunded"]), currency=currency
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="amount") from None
    now = await clocks.now_for(tx.conn, call, intent["test_clock_id"])
    refund_id = new_id("re")
    result = await call.provider.refund(
        charge_ref=intent["charge_ref"] or intent["id"], amount=amount, currency=currency, idempotency_key=refund_id
    )
    if not result.succeeded:
        message = result.error.message if result.error else "the provider refused the refund"
        raise PaywireError(message, param="amount", code="refund_failed")
    row = {
        "id": refund_id,
        "livemode": call.livemode,
        "payment_intent_id": intent["id"],
        "amount": amount,
        "currency": currency,
        "status": "succeeded",
        "reason": params.reason,
        "refund_ref": result.refund_ref,
        "metadata": params.metadata or {},
        "created": int(now),
        "updated": int(now),
    }
    await tx.conn.execute(refunds.insert().values(**row))
    await tx.conn.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent["id"])
        .values(amount_refunded=int(intent["amount_refunded"]) + amount, updated=int(now))
    )
    refund = render(row)
    await append(tx, [NewEvent("refund.succeeded", refund)], livemode=call.livemode, now=now, request=call.request)
    return refund


def listing(livemode: bool, *, payment_intent_id: str | None = None) -> sa.Select[Any]:
    query = sa.select(refunds).where(refunds.c.livemode == livemode)
    if payment_intent_id:
        query = query.where(refunds.c.payment_intent_id == payment_intent_id)
    return query

"""Payment intents: one per amount to collect, charged through the provider.

Status: `requires_payment_method` until a charge succeeds (`succeeded`); a failed charge leaves
it `requires_payment_method` with `last_payment_error`, so another card can be tried (Stripe's
model). `canceled` when the thing it paid for went away (an expired checkout session).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import money
from paywire.billing.runtime import Call
from paywire.db.schema import payment_intents
from paywire.ids import new_id
from paywire.providers.base import PaymentError

MISSING_METHOD = PaymentError(
    "payment_method_missing", None, "There is no payment method to charge; add a default_payment_method."
)


def render(m: Any) -> dict[str, Any]:
    currency = m["currency"]
    return {
        **objects.common_fields(m, "payment_intent"),
        "amount": money.format_amount(int(m["amount"]), currency),
        "amount_received": money.format_amount(int(m["amount_received"]), currency),
        "amount_refunded": money.format_amount(int(m["amount_refunded"]), currency),
        "currency": currency,
        "status": m["status"],
        "customer_id": m["customer_id"],
        "invoice_id": m["invoice_id"],
        "checkout_session_id": m["checkout_session_id"],
        "payment_method": m["payment_method"],
        "last_payment_error": m["last_payment_error"],
        "description": m["description"],
        "test_clock_id": m["test_clock_id"],
    }


def build(
    *,
    livemode: bool,
    amount: int,
    currency: str,
    customer_id: str | None,
    invoice_id: str | None = None,
    checkout_session_id: str | None = None,
    description: str | None = None,
    clock_id: str | None,
    now: float,
) -> dict[str, Any]:
    return {
        "id": new_id("pi"),
        "livemode": livemode,
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "checkout_session_id": checkout_session_id,
        "amount": amount,
        "amount_received": 0,
        "amount_refunded": 0,
        "currency": currency,
        "status": "requires_payment_method",
        "payment_method": None,
        "charge_ref": None,
        "charge_attempts": 0,
        "last_payment_error": None,
        "description": description,
        "test_clock_id": clock_id,
        "metadata": {},
        "created": int(now),
        "updated": int(now),
    }


async def charge(call: Call, intent: dict[str, Any], payment_method: str | None, now: float) -> dict[str, Any]:
    """Charge the intent's amount; returns its values after the attempt (nothing is written)."""
    attempt = int(intent["charge_attempts"]) + 1
    base = {**intent, "payment_method": payment_method, "charge_attempts": attempt, "updated": int(now)}
    if payment_method is None:
        return {**base, "last_payment_error": MISSING_METHOD.as_dict(None)}
    result = await call.provider.charge(
        payment_method=payment_method,
        amount=int(intent["amount"]),
        currency=intent["currency"],
        idempotency_key=f"{intent['id']}/{attempt}",
    )
    if not result.succeeded:
        error = result.error or PaymentError("card_declined", None, "The charge failed.")
        return {**base, "last_payment_error": error.as_dict(payment_method)}
    return {
        **base,
        "status": "succeeded",
        "amount_received": intent["amount"],
        "charge_ref": result.charge_ref,
        "last_payment_error": None,
    }


def outcome_event(intent: dict[str, Any]) -> str:
    return "payment_intent.succeeded" if intent["status"] == "succeeded" else "payment_intent.payment_failed"


def listing(livemode: bool, *, customer_id: str | None = None, status: str | None = None) -> sa.Select[Any]:
    query = sa.select(payment_intents).where(payment_intents.c.livemode == livemode)
    if customer_id:
        query = query.where(payment_intents.c.customer_id == customer_id)
    if status:
        query = query.where(payment_intents.c.status == status)
    return query

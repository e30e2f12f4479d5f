"""Payment intents: one per amount to collect, charged through the provider.

Status: `requires_payment_method` until a charge succeeds (`succeeded`); a failed charge leaves
it `requires_payment_method` with `last_payment_error`, so another card can be tried (Stripe's
model). `processing` while the provider is being asked (billing/charging.py); `requires_action`
when the payer must authenticate (3-D Secure: `next_action`), which the payer's next confirm
continues. `canceled` when the thing it paid for went away (an expired checkout session).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import charge_step, money
from paywire.billing.runtime import Call
from paywire.billing.statuses import PaymentIntentStatus
from paywire.db.engine import Tx
from paywire.db.schema import payment_intents
from paywire.ids import new_id
from paywire.providers.base import ChargeResult, PaymentError

MISSING_METHOD = PaymentError(
    "payment_method_missing", None, "There is no payment method to charge; add a default_payment_method."
)
AUTHENTICATION_REQUIRED = PaymentError(
    "authentication_required",
    "authentication_required",
    "This payment requires the customer to authenticate (3-D Secure); confirm it again once they have.",
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
        "next_action": m.get("next_action"),
        "test_clock_id": m["test_clock_id"],
    }


def build(
    *,
    call: Call | None = None,
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
        "id": (charge_step.build_id(call) if call is not None else None) or new_id("pi"),
        "livemode": livemode,
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "checkout_session_id": checkout_session_id,
        "amount": amount,
        "amount_received": 0,
        "amount_refunded": 0,
        "currency": currency,
        "status": PaymentIntentStatus.REQUIRES_PAYMENT_METHOD,
        "payment_method": None,
        "charge_ref": None,
        "charge_attempts": 0,
        "last_payment_error": None,
        "next_action": None,
        "subject_id": None,
        "continuation": None,
        "processing_since": None,
        "description": description,
        "test_clock_id": clock_id,
        "metadata": {},
        "created": int(now),
        "updated": int(now),
    }


async def charge(
    call: Call, intent: dict[str, Any], payment_method: str | None, now: float, *, off_session: bool = False
) -> dict[str, Any]:
    """Charge the intent's amount; returns its values after the attempt (nothing is written).

    Under the charge step (billing/charging.py) the provider is not called here: the first pass
    stops at this point, and the finish pass gets the provider's answer."""
    if payment_method is None:
        attempt = int(intent["charge_attempts"]) + 1
        base = {**intent, "payment_method": None, "charge_attempts": attempt, "updated": int(now)}
        return {**base, "last_payment_error": MISSING_METHOD.as_dict(None)}
    if call.step is not None:
        charged = charge_step.take_charge(call, intent, payment_method, off_session)
        return apply_result(intent, charged.payment_method, charged.attempt, charged.result, now)
    attempt = int(intent["charge_attempts"]) + 1
    result = await call.provider.charge(
        payment_method=payment_method,
        amount=int(intent["amount"]),
        currency=intent["currency"],
        idempotency_key=f"{intent['id']}/{attempt}",
        off_session=off_session,
    )
    return apply_result(intent, payment_method, attempt, result, now)


def apply_result(
    intent: dict[str, Any], payment_method: str | None, attempt: int, result: ChargeResult, now: float
) -> dict[str, Any]:
    """The intent's values after the provider answered `result` for charge attempt `attempt`."""
    base = {
        **intent,
        "payment_method": payment_method,
        "charge_attempts": attempt,
        "updated": int(now),
        "next_action": None,
        "continuation": None,
        "processing_since": None,
    }
    if result.succeeded:
        return {
            **base,
            "status": PaymentIntentStatus.SUCCEEDED,
            "amount_received": intent["amount"],
            "charge_ref": result.charge_ref,
            "last_payment_error": None,
        }
    if result.next_action is not None:
        # Declined until the payer authenticates; their next confirm (or Stripe's webhook once
        # they have) continues this charge (charging.finish keeps its continuation).
        return {
            **base,
            "status": PaymentIntentStatus.REQUIRES_ACTION,
            "charge_ref": result.charge_ref,
            "next_action": result.next_action,
            "last_payment_error": AUTHENTICATION_REQUIRED.as_dict(payment_method),
        }
    error = result.error or PaymentError("card_declined", None, "The charge failed.")
    return {
        **base,
        "status": PaymentIntentStatus.REQUIRES_PAYMENT_METHOD,
        "charge_ref": result.charge_ref or intent.get("charge_ref"),
        "last_payment_error": error.as_dict(payment_method),
    }


async def write(tx: Tx, intent: dict[str, Any]) -> None:
    """Insert the intent, or update it if it is already recorded (as `processing`)."""
    values = {k: v for k, v in intent.items() if k != "seq"}
    found = await tx.conn.scalar(sa.select(payment_intents.c.id).where(payment_intents.c.id == intent["id"]))
    if found is None:
        await tx.conn.execute(payment_intents.insert().values(**values))
    else:
        values.pop("id")
        await tx.conn.execute(payment_intents.update().where(payment_intents.c.id == intent["id"]).values(**values))


def outcome_event(intent: dict[str, Any]) -> str:
    return (
        "payment_intent.succeeded"
        if intent["status"] == PaymentIntentStatus.SUCCEEDED
        else "payment_intent.payment_failed"
    )


def listing(livemode: bool, *, customer_id: str | None = None, status: str | None = None) -> sa.Select[Any]:
    query = sa.select(payment_intents).where(payment_intents.c.livemode == livemode)
    if customer_id:
        query = query.where(payment_intents.c.customer_id == customer_id)
    if status:
        query = query.where(payment_intents.c.status == status)
    return query

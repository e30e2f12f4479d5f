"""What Stripe reports later, through its webhook: applied once per Stripe event id.

- `payment_intent.succeeded` / `payment_intent.payment_failed` for a charge Paywire still has
  `processing` (Stripe decided asynchronously, or the answer to our call was lost): recorded by
  the charge step's finish (billing/charging.py), as if the call had answered — the flow's
  events in the contract's order. Events for another attempt, or an intent already settled,
  change nothing.
- `refund.updated` / `refund.failed` / `charge.refund.updated` for a refund: a `pending` refund
  becomes `succeeded` (with `refund.succeeded`) or `failed`; a `succeeded` one that Stripe
  reports failed later becomes `failed`, its amount refundable again, with Paywire's
  `refund.failed`.
- `charge.dispute.created`: Paywire's `charge.dispute.created` event, whose object is the
  dispute (`dispute`: Stripe's id, amount, reason, status, and our `payment_intent_id`).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from paywire.billing import charging, money
from paywire.billing import refunds as refunds_flow
from paywire.billing.runtime import Billing
from paywire.billing.statuses import PaymentIntentStatus, RefundStatus
from paywire.clock import iso
from paywire.db.engine import Database
from paywire.db.schema import payment_intents, provider_events, refunds
from paywire.events.log import NewEvent, append
from paywire.providers.base import ChargeResult, PaymentError

log = logging.getLogger("paywire.stripe")


async def apply(db: Database, billing: Billing, event: dict[str, Any]) -> bool:
    """Apply one verified Stripe event; False if this event id was already applied."""
    event_id, kind = str(event["id"]), str(event["type"])
    async with db.read() as conn:
        seen = await conn.scalar(sa.select(provider_events.c.id).where(provider_events.c.id == event_id))
    if seen is not None:
        return False
    obj: dict[str, Any] = event["data"]["object"]
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        await _payment_intent(db, billing, obj, succeeded=kind == "payment_intent.succeeded")
    elif kind in ("refund.updated", "refund.failed", "charge.refund.updated", "refund.created"):
        await _refund(db, billing, obj)
    async with db.transaction() as tx:
        if await tx.conn.scalar(sa.select(provider_events.c.id).where(provider_events.c.id == event_id)):
            return False  # applied meanwhile by another request (each step above is idempotent)
        if kind == "charge.dispute.created":
            await _dispute(tx, billing, obj)
        now = int(billing.clock.now())
        await tx.conn.execute(provider_events.insert().values(id=event_id, provider="stripe", type=kind, received=now))
    return True


async def _payment_intent(db: Database, billing: Billing, obj: dict[str, Any], *, succeeded: bool) -> None:
    metadata = obj.get("metadata") or {}
    intent_id = metadata.get("paywire_payment_intent")
    if not intent_id:
        return
    async with db.transaction() as tx:
        row = (
            (
                await tx.conn.execute(
                    sa.select(payment_intents).where(payment_intents.c.id == intent_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None or str(metadata.get("paywire_attempt")) != str(row["charge_attempts"]):
            return  # not ours, or about an earlier attempt
        if row["status"] == PaymentIntentStatus.REQUIRES_ACTION and row["continuation"] and succeeded:
            # The payer authenticated (3-D Secure) and Stripe charged: finish the flow now.
            await tx.conn.execute(
                payment_intents.update()
                .where(payment_intents.c.id == intent_id)
                .values(status=PaymentIntentStatus.PROCESSING)
            )
        elif row["status"] != PaymentIntentStatus.PROCESSING:
            return
    if succeeded:
        result = ChargeResult(True, charge_ref=str(obj["id"]))
    else:
        last = obj.get("last_payment_error") or {}
        error = PaymentError(
            str(last.get("code") or "card_declined"),
            last.get("decline_code"),
            str(last.get("message") or "Your card was declined."),
        )
        result = ChargeResult(False, charge_ref=str(obj["id"]), error=error)
    await charging.finish(db, billing, str(intent_id), result, None)


async def _refund(db: Database, billing: Billing, obj: dict[str, Any]) -> None:
    status = obj.get("status")
    ours = (obj.get("metadata") or {}).get("paywire_refund")
    async with db.transaction() as tx:
        where = refunds.c.refund_ref == str(obj.get("id"))
        if ours:
            where = sa.or_(where, refunds.c.id == ours)
        row = (await tx.conn.execute(sa.select(refunds).where(where).with_for_update())).mappings().first()
        if row is None:
            return
        call = billing.call(bool(row["livemode"]))
        if row["status"] == RefundStatus.PENDING and status in ("succeeded", "failed", "canceled"):
            await refunds_flow.record(
                tx, call, {**row, "refund_ref": str(obj.get("id"))}, succeeded=status == "succeeded",
                refund_ref=str(obj.get("id")),
            )  # fmt: skip
        elif row["status"] == RefundStatus.SUCCEEDED and status in ("failed", "canceled"):
            log.warning("refund %s failed after it succeeded (Stripe %s): refundable again", row["id"], obj.get("id"))
            await refunds_flow.record(
                tx, call, dict(row), succeeded=False, refund_ref=row["refund_ref"], reversed_=True
            )


async def _dispute(tx: Any, billing: Billing, obj: dict[str, Any]) -> None:
    charge_ref = obj.get("payment_intent")
    if not charge_ref:
        return
    row = (
        (await tx.conn.execute(sa.select(payment_intents).where(payment_intents.c.charge_ref == str(charge_ref))))
        .mappings()
        .first()
    )
    if row is None:
        return
    created = int(obj.get("created") or billing.clock.now())
    currency = str(obj.get("currency") or row["currency"])
    dispute = {
        "id": str(obj["id"]),
        "object": "dispute",
        "livemode": bool(row["livemode"]),
        "metadata": {},
        "created": created,
        "created_at": iso(created),
        "amount": money.format_amount(int(obj.get("amount") or row["amount"]), currency),
        "currency": currency,
        "reason": obj.get("reason"),
        "status": obj.get("status"),
        "payment_intent_id": row["id"],
    }
    await append(
        tx, [NewEvent("charge.dispute.created", dispute)], livemode=bool(row["livemode"]), now=billing.clock.now()
    )

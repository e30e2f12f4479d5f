"""Refunds: full or partial, never more than what a payment intent received.

The payment intent's row is locked while its refundable amount is checked and updated, so two
concurrent refunds cannot together exceed the payment. The provider is asked between two
transactions: the first records the refund `pending` (its amount already counted as refunded),
the second records the provider's answer — `succeeded` with `refund.succeeded`, or `failed`
(the amount is refundable again). A refund a crash left `pending` is settled by the reconciler,
which asks again with the same idempotency key (the refund's id): never refunded twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import charge_step, charging, clocks, money
from paywire.billing.runtime import Billing, Call
from paywire.billing.schemas import PaymentIntentRefund
from paywire.billing.statuses import PaymentIntentStatus, RefundStatus
from paywire.db.engine import Database, Tx
from paywire.db.schema import payment_intents, refunds
from paywire.errors import InvalidRequest, PaywireError, ServiceUnavailable, StateError
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
    """A refund in one transaction, for an in-process provider (the test provider): recorded and
    answered at once. With any other provider it is left `pending` for `settle`; the API uses
    `refund`, which never calls a provider inside a transaction."""
    row = await prepare(tx, call, payment_intent_id, params)
    if not charge_step.is_local(call):
        return render(row)
    result = await call.provider.refund(
        charge_ref=row["charge_ref"], amount=int(row["amount"]), currency=row["currency"], idempotency_key=row["id"]
    )
    if not result.succeeded:
        message = result.error.message if result.error else "the provider refused the refund"
        raise PaywireError(message, param="amount", code="refund_failed")
    row.pop("charge_ref")
    return await record(tx, call, row, succeeded=True, refund_ref=result.refund_ref)


async def prepare(tx: Tx, call: Call, payment_intent_id: str, params: PaymentIntentRefund) -> dict[str, Any]:
    """Check and record the refund as `pending`; the provider is asked after this commits."""
    intent = await objects.fetch(tx.conn, payment_intents, payment_intent_id, call.livemode, lock=True)
    if intent["status"] != PaymentIntentStatus.SUCCEEDED:
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
    row = {
        "id": new_id("re"),
        "livemode": call.livemode,
        "payment_intent_id": intent["id"],
        "amount": amount,
        "currency": currency,
        "status": RefundStatus.PENDING,
        "reason": params.reason,
        "refund_ref": None,
        "processing_since": call.billing.clock.now(),
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
    return {**row, "charge_ref": intent["charge_ref"] or intent["id"]}


async def refund(db: Database, call: Call, payment_intent_id: str, params: PaymentIntentRefund) -> dict[str, Any]:
    """`POST /api/refunds`: record it pending, ask the provider, record the answer."""
    async with db.transaction() as tx:
        row = await prepare(tx, call, payment_intent_id, params)
    return await settle(db, call.billing, row["id"], call=call)


async def settle(db: Database, billing: Billing, refund_id: str, *, call: Call | None = None) -> dict[str, Any]:
    """Ask the provider for a `pending` refund (no transaction open) and record its answer: with
    the API caller's `call` (its request on the events), else, for the reconciler, the refund's mode."""
    async with db.read() as conn:
        row = (await conn.execute(sa.select(refunds).where(refunds.c.id == refund_id))).mappings().one()
        intent = (
            (await conn.execute(sa.select(payment_intents).where(payment_intents.c.id == row["payment_intent_id"])))
            .mappings()
            .one()
        )
    if row["status"] != RefundStatus.PENDING:
        return render(row)
    call = call or billing.call(bool(row["livemode"]))
    try:
        result = await call.provider.refund(
            charge_ref=intent["charge_ref"] or intent["id"],
            amount=int(row["amount"]),
            currency=row["currency"],
            idempotency_key=refund_id,
        )
    except Exception as exc:
        raise ServiceUnavailable(
            "the payment provider did not answer; the refund is pending and will be settled", code="refund_pending"
        ) from exc
    await charging.pause_for_tests()

    async def answer() -> dict[str, Any]:
        async with db.transaction() as tx:
            row = (
                (await tx.conn.execute(sa.select(refunds).where(refunds.c.id == refund_id).with_for_update()))
                .mappings()
                .one()
            )
            if row["status"] != RefundStatus.PENDING or result.pending:
                return render(row)
            return await record(tx, call, dict(row), succeeded=result.succeeded, refund_ref=result.refund_ref)

    refund: dict[str, Any] = await charging.record_retrying(answer)
    if not result.succeeded:  # recorded as failed; the caller hears why
        message = result.error.message if result.error else "the provider refused the refund"
        raise PaywireError(message, param="amount", code="refund_failed")
    return refund


async def record(
    tx: Tx, call: Call, row: dict[str, Any], *, succeeded: bool, refund_ref: str | None, reversed_: bool = False
) -> dict[str, Any]:
    """A pending refund's answer: `succeeded` (and its event) or `failed` (refundable again).
    `reversed_`: a refund that had succeeded and that the provider reports failed later (its
    webhook): `refund.failed` tells the merchant the money did not go back."""
    intent = await objects.fetch(tx.conn, payment_intents, row["payment_intent_id"], bool(row["livemode"]), lock=True)
    now = await clocks.now_for(tx.conn, call, intent["test_clock_id"])
    if succeeded:
        after = {
            **row,
            "status": RefundStatus.SUCCEEDED,
            "refund_ref": refund_ref or row["refund_ref"],
            "processing_since": None,
        }
        await tx.conn.execute(
            refunds.update()
            .where(refunds.c.id == row["id"])
            .values(status=RefundStatus.SUCCEEDED, refund_ref=after["refund_ref"], processing_since=None)
        )
        refund = render(after)
        await append(tx, [NewEvent("refund.succeeded", refund)], livemode=call.livemode, now=now, request=call.request)
        return refund
    await tx.conn.execute(
        refunds.update().where(refunds.c.id == row["id"]).values(status=RefundStatus.FAILED, processing_since=None)
    )
    await tx.conn.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent["id"])
        .values(amount_refunded=int(intent["amount_refunded"]) - int(row["amount"]), updated=int(now))
    )
    failed = render({**row, "status": RefundStatus.FAILED})
    if reversed_:
        await append(tx, [NewEvent("refund.failed", failed)], livemode=call.livemode, now=now, request=call.request)
    return failed


def listing(livemode: bool, *, payment_intent_id: str | None = None) -> sa.Select[Any]:
    query = sa.select(refunds).where(refunds.c.livemode == livemode)
    if payment_intent_id:
        query = query.where(refunds.c.payment_intent_id == payment_intent_id)
    return query

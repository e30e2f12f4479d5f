"""The reconciler: settles charges and refunds that a crash left in flight.

A payment intent stays `processing` (a refund `pending`) only while its provider call is out.
One older than `Billing.charge_grace` was left by a process that died between recording it and
recording the provider's answer. The reconciler asks the provider again — the same call with the
same idempotency key, which returns the first answer and never charges (or refunds) twice — and
records the answer the same way the first process would have (billing/charging.py). The
scheduler runs it; several reconcilers may run at once: the answer is recorded only once.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from paywire.billing import charging, refunds
from paywire.billing.runtime import Billing
from paywire.billing.statuses import PaymentIntentStatus, RefundStatus
from paywire.db.engine import Database
from paywire.db.schema import payment_intents
from paywire.db.schema import refunds as refunds_table

log = logging.getLogger("paywire.reconcile")
BATCH = 20


async def run(db: Database, billing: Billing) -> int:
    """Settle what is overdue (a batch at a time); returns how many were settled."""
    cutoff = billing.clock.now() - billing.charge_grace
    async with db.read() as conn:
        intents = (
            (
                await conn.execute(
                    sa.select(payment_intents)
                    .where(
                        payment_intents.c.status == PaymentIntentStatus.PROCESSING,
                        payment_intents.c.processing_since < cutoff,
                    )
                    .order_by(payment_intents.c.processing_since)
                    .limit(BATCH)
                )
            )
            .mappings()
            .all()
        )
        pending = (
            (
                await conn.execute(
                    sa.select(refunds_table.c.id)
                    .where(refunds_table.c.status == RefundStatus.PENDING, refunds_table.c.processing_since < cutoff)
                    .limit(BATCH)
                )
            )
            .scalars()
            .all()
        )
    settled = 0
    for intent in intents:
        try:
            await charging.settle(db, billing, dict(intent))
            settled += 1
        except Exception:
            log.warning("reconcile: payment intent %s is still unsettled", intent["id"], exc_info=True)
    for refund_id in pending:
        try:
            await refunds.settle(db, billing, refund_id)
            settled += 1
        except Exception:
            log.warning("reconcile: refund %s is still unsettled", refund_id, exc_info=True)
    return settled


async def settle_clock(db: Database, billing: Billing, clock_id: str, settled: set[str]) -> bool:
    """Settle a test clock's charges still `processing`, at once (no grace), for its advance to
    run what their answers schedule before it ends; True if there were any. Each once per
    advance: `settled` holds those asked, so a provider answering "still processing" is not asked
    again and again. A provider that does not answer raises (`charging.settle`).

    An advance's own batches settle theirs before they return, unless the provider did not
    answer; the others were left by the process the advance took over (killed between a
    renewal's charge and its answer). Their answers schedule the next jobs (the next renewal, a
    dunning retry), which may fall before the advance's target."""
    async with db.read() as conn:
        in_flight = (
            (
                await conn.execute(
                    sa.select(payment_intents).where(
                        payment_intents.c.test_clock_id == clock_id,
                        payment_intents.c.status == PaymentIntentStatus.PROCESSING,
                        payment_intents.c.id.not_in(settled),
                    )
                )
            )
            .mappings()
            .all()
        )
    for intent in in_flight:
        settled.add(intent["id"])
        await charging.settle(db, billing, dict(intent))
    return bool(in_flight)

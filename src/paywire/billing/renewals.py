"""Subscription changes driven by time — trial notices, trial end, renewals, dunning retries,
scheduled cancels, expiry of incomplete subscriptions — and paying an invoice late.

The scheduler (wall clock) and test clocks call the `on_*` handlers, each inside the job's
transaction. A handler first re-checks that its job still applies (the subscription may have
changed since it was scheduled), so a stale job does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import clocks, invoices, jobs, payments
from paywire.billing.collection import Collection, charge_new, collect_again, open_new, record_new
from paywire.billing.declines import Declinable, Declined, check_payment_method
from paywire.billing.runtime import Call
from paywire.billing.statuses import InvoiceStatus, SubscriptionStatus
from paywire.billing.subscription_state import (
    BILLED,
    DUNNING_DAYS,
    ENDED,
    PREFIX,
    TRIAL_NOTICE,
    emit,
    end_subscription,
    event,
    lines_for_period,
    load,
    new_invoice,
    note_retry,
    period_after,
    reschedule,
    retry_payload,
    save,
    saved,
    schedule_retry,
    updated_events,
)
from paywire.billing.subscription_state import (
    render as render_subscription,
)
from paywire.db.engine import Tx
from paywire.db.schema import invoices as invoices_table
from paywire.errors import StateError
from paywire.events.log import NewEvent


async def settle_paid_invoice(tx: Tx, call: Call, invoice: dict[str, Any], now: float) -> list[NewEvent]:
    """A late payment of a subscription's invoice (retry, `/pay`): the "card pays" events.

    `started` for the first paid period, `renewed` for a renewal, then `.updated` (status back to
    active). The invoice's own payment events come first, from the caller.
    """
    if invoice["subscription_id"] is None:
        return []
    before = await load(tx, invoice["subscription_id"])
    if before["status"] in ENDED:
        return []
    after = dict(before)
    if (
        before["status"] in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.INCOMPLETE)
        and before["latest_invoice_id"] == invoice["id"]
    ):
        after["status"] = SubscriptionStatus.ACTIVE
    await save(tx, before, after, now)
    await jobs.cancel(tx, before["id"], (jobs.DUNNING_RETRY,), now=now)
    if after["status"] != before["status"]:
        await reschedule(tx, after, now)
    specific = {"subscription_create": "started", "subscription_cycle": "renewed"}.get(invoice["billing_reason"])
    return [*([event(specific, after)] if specific else []), *updated_events(before, after)]


async def on_trial_will_end(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await load(tx, job["object_id"])
    if sub["status"] != SubscriptionStatus.TRIALING or sub["trial_end"] is None:
        return
    if job["due"] == max(sub["trial_start"], sub["trial_end"] - TRIAL_NOTICE):  # still this trial's notice
        await emit(tx, call, [event("trial_will_end", sub)], now)


@dataclass
class PeriodPlan:
    """A charged period's rows and events, computed before anything is written."""

    before: dict[str, Any]
    after: dict[str, Any]
    collected: Collection
    retry_due: int | None  # the first dunning retry, when the charge failed
    events: list[NewEvent]


@dataclass(frozen=True)
class OpenedPeriod:
    """A period up to its charge: the subscription moved on to it, its invoice (with the pending
    lines) and payment intent as built. A batch of renewals keeps it from its first pass to the
    provider's answer (billing/renewal_batch.py) instead of planning the period again."""

    before: dict[str, Any]
    after: dict[str, Any]  # the new period; status and latest invoice still the old ones
    opened: Collection  # no outcome yet
    reason: str


def open_period(
    call: Call, before: dict[str, Any], pending: list[dict[str, Any]], start: int, reason: str, now: float
) -> OpenedPeriod:
    """The first half of `plan_period`: everything before the charge."""
    after = {**before, "current_period_start": start}
    after["current_period_end"] = period_after(after, start)
    period = (start, after["current_period_end"])
    invoice = new_invoice(after, reason, lines_for_period(after, *period), period, now)
    return OpenedPeriod(before, after, open_new(call, invoice, pending, now), reason)


async def charge_period(call: Call, opened: OpenedPeriod, now: float, first: tuple[str, ...]) -> PeriodPlan:
    """The second half of `plan_period`: the charge and what follows from its outcome. Leaves
    `opened` as it was (a batch may record the same answer again after a lost connection)."""
    collected = await charge_new(call, opened.opened, opened.after["default_payment_method"], now)
    return charged_period(opened, collected, now, first)


def charged_period(opened: OpenedPeriod, collected: Collection, now: float, first: tuple[str, ...]) -> PeriodPlan:
    """A renewal's (or a trial's end's) transition once the provider has answered: the
    subscription after (active if paid, else past due), the first dunning retry when the charge
    failed, and the events in the contract's order. No SQL: the caller writes the plan."""
    before = opened.before
    after = {
        **opened.after,
        "latest_invoice_id": collected.invoice["id"],
        "status": SubscriptionStatus.ACTIVE if collected.paid else SubscriptionStatus.PAST_DUE,
    }
    saved(before, after, now)
    retry_due = None if collected.paid else note_retry(collected, 1, int(now))
    specific = {"subscription_create": "started", "subscription_cycle": "renewed"}[opened.reason]
    # Every subscription event here carries `after` as it is now: rendered once, one object
    # (the event log then encodes it once, `events.log.append_many`).
    rendered = render_subscription(after)
    paid = [NewEvent(PREFIX + specific, rendered)] if collected.paid else []
    opening = [NewEvent(PREFIX + kind, rendered) for kind in first]
    updated = updated_events(before, after, rendered)
    events = [*opening, *collected.created, *collected.outcome, *paid, *updated]
    return PeriodPlan(before, after, collected, retry_due, events)


async def plan_period(
    call: Call,
    before: dict[str, Any],
    pending: list[dict[str, Any]],
    start: int,
    reason: str,
    now: float,
    first: tuple[str, ...],
) -> PeriodPlan:
    """Start the period at `start` and charge it (trial end and renewal share this): what is to
    be written, and the events in the contract's order. Writes nothing, so a batch of renewals
    can write many plans with one statement per table (billing/renewal_batch.py)."""
    return await charge_period(call, open_period(call, before, pending, start, reason, now), now, first)


async def _charge_period(
    tx: Tx, call: Call, before: dict[str, Any], start: int, reason: str, now: float, first: tuple[str, ...]
) -> None:
    pending = (await invoices.read_pending_lines(tx, [before["id"]])).get(before["id"], [])
    plan = await plan_period(call, before, [line for _, line in pending], start, reason, now, first)
    after = plan.after
    await invoices.attach_lines(tx, {seq: plan.collected.invoice["id"] for seq, _ in pending})
    await record_new(tx, plan.collected, now)
    await save(tx, before, after, now)
    if plan.retry_due is not None:
        first_failed = int(now)
        await jobs.schedule(
            tx, kind=jobs.DUNNING_RETRY, object_id=after["id"], due=plan.retry_due, livemode=after["livemode"],
            clock_id=after["test_clock_id"], now=first_failed,
            payload=retry_payload(plan.collected.invoice, 1, first_failed),
        )  # fmt: skip
    await emit(tx, call, plan.events, now)
    await reschedule(tx, after, now)


async def on_trial_end(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await load(tx, job["object_id"])
    if sub["status"] != SubscriptionStatus.TRIALING or sub["trial_end"] != job["due"] or sub["cancel_at_period_end"]:
        return
    await _charge_period(tx, call, sub, sub["trial_end"], "subscription_create", now, ("trial_end",))


def renewal_applies(sub: dict[str, Any], job: Any) -> bool:
    """Whether a renewal job still renews its subscription (else it does nothing)."""
    if sub["status"] not in BILLED or sub["current_period_end"] != job["due"]:
        return False
    return not sub["cancel_at_period_end"]


async def on_renewal(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await load(tx, job["object_id"])
    if not renewal_applies(sub, job):
        return
    await _charge_period(tx, call, sub, sub["current_period_end"], "subscription_cycle", now, ())


async def on_cancel(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await load(tx, job["object_id"])
    if sub["status"] in ENDED or not sub["cancel_at_period_end"] or sub["current_period_end"] != job["due"]:
        return
    after = await end_subscription(tx, sub, now, canceled_at=None)
    await emit(tx, call, [event("deleted", after)], now)


async def on_incomplete_expire(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await load(tx, job["object_id"])
    if sub["status"] != SubscriptionStatus.INCOMPLETE:
        return
    events = []
    if sub["latest_invoice_id"]:
        row = (
            (await tx.conn.execute(sa.select(invoices_table).where(invoices_table.c.id == sub["latest_invoice_id"])))
            .mappings()
            .first()
        )
        if row is not None and row["status"] == InvoiceStatus.OPEN:
            await tx.conn.execute(
                invoices_table.update()
                .where(invoices_table.c.id == row["id"])
                .values(status=InvoiceStatus.VOID, updated=int(now))
            )
            events.append(NewEvent("invoice.voided", invoices.render({**row, "status": InvoiceStatus.VOID})))
    after = await end_subscription(tx, sub, now, canceled_at=None, status=SubscriptionStatus.INCOMPLETE_EXPIRED)
    await emit(tx, call, [*events, event("deleted", after)], now)


async def on_dunning_retry(tx: Tx, call: Call, job: Any, now: float) -> None:
    """Retry a failed invoice (after 1, 3 and 5 days); the last failure cancels the subscription."""
    sub = await load(tx, job["object_id"])
    invoice_id = job["payload"]["invoice_id"]
    row = (await tx.conn.execute(sa.select(invoices_table).where(invoices_table.c.id == invoice_id))).mappings().first()
    if (
        row is None
        or row["status"] != InvoiceStatus.OPEN
        or sub["status"] in ENDED
        or sub["status"] == SubscriptionStatus.PAUSED
    ):
        return
    collected = await collect_again(tx, call, row, sub["default_payment_method"], now)
    if collected.paid:
        await emit(tx, call, [*collected.outcome, *await settle_paid_invoice(tx, call, collected.invoice, now)], now)
        return
    attempt, first = int(job["payload"]["attempt"]), int(job["payload"]["first_failed_at"])
    if attempt < len(DUNNING_DAYS):
        await schedule_retry(tx, sub, collected, attempt + 1, first)
        await emit(tx, call, collected.outcome, now)
        return
    invoice = {**collected.invoice, "status": InvoiceStatus.UNCOLLECTIBLE, "next_payment_attempt": None}
    await tx.conn.execute(
        invoices_table.update()
        .where(invoices_table.c.id == invoice_id)
        .values(status=InvoiceStatus.UNCOLLECTIBLE, next_payment_attempt=None)
    )
    after = await end_subscription(tx, sub, now, canceled_at=int(now))
    uncollectible = NewEvent("invoice.marked_uncollectible", invoices.render(invoice))
    await emit(tx, call, [*collected.outcome, uncollectible, event("deleted", after)], now)


async def pay_invoice(tx: Tx, call: Call, invoice_id: str, payment_method: str | None) -> Declinable[dict[str, Any]]:
    """`POST /api/invoices/{id}/pay`: charge an open invoice now (with this card, or the
    subscription's default); success has the same effects as a successful dunning retry."""
    found = await objects.fetch(tx.conn, invoices_table, invoice_id, call.livemode)
    # Lock the subscription before the invoice: the order every scheduled job takes them in.
    sub = await load(tx, found["subscription_id"]) if found["subscription_id"] else None
    row = await objects.fetch(tx.conn, invoices_table, invoice_id, call.livemode, lock=True)
    if row["status"] != InvoiceStatus.OPEN:
        raise StateError(f"invoice {invoice_id!r} is {row['status']}; only an open invoice can be paid")
    if payment_method is not None:
        await check_payment_method(
            call, payment_method, "payment_method", saving=False, tx=tx, customer_id=row["customer_id"]
        )
    now = await clocks.now_for(tx.conn, call, row["test_clock_id"])
    if payment_method is None and sub is not None:
        payment_method = sub["default_payment_method"]
    collected = await collect_again(tx, call, row, payment_method, now)
    settled = await settle_paid_invoice(tx, call, collected.invoice, now) if collected.paid else []
    await emit(tx, call, [*collected.outcome, *settled], now)
    invoice = invoices.render(collected.invoice)
    intent = collected.intent
    if collected.paid or intent is None or intent["last_payment_error"] is None:
        return Declinable(invoice)
    return Declinable(invoice, Declined(intent["last_payment_error"], payments.render(intent)))

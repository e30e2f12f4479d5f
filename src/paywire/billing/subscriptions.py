"""Subscriptions: created (directly or by checkout), changed, canceled, paused and resumed by calls.

Each function runs inside the caller's transaction: it writes the subscription, its invoices and
payment intents and its jobs, and appends the events in the contract's order, so they commit (or
roll back) together. Time-driven changes (trial end, renewals, dunning) are in `renewals.py`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import clocks, invoices, items, money, payments, transitions
from paywire.billing.collection import Collection, mark_paid, open_and_collect
from paywire.billing.declines import Declinable, Declined, check_payment_method
from paywire.billing.runtime import Call
from paywire.billing.schemas import SubscriptionCreate, SubscriptionUpdate
from paywire.billing.statuses import InvoiceStatus, SubscriptionStatus
from paywire.billing.subscription_state import (
    ENDED,
    apply,
    emit,
    event,
    insert,
    lines_for_period,
    load,
    new_invoice,
    render,
    reschedule,
    save,
    schedule_retry,
    updated_events,
)
from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.db.schema import customers, payment_intents, subscriptions
from paywire.db.schema import invoices as invoices_table
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.events.log import NewEvent
from paywire.ids import new_id

__all__ = ["cancel", "create", "listing", "pause", "render", "resume", "start_from_checkout", "update"]


async def create(tx: Tx, call: Call, params: SubscriptionCreate) -> dict[str, Any]:
    """`POST /api/subscriptions`. Without a trial the first period is charged at once: a card
    that fails leaves the subscription `incomplete` (it expires after 23 hours unless its invoice
    is paid), as Stripe's default `payment_behavior` does."""
    try:
        customer = await objects.fetch(tx.conn, customers, params.customer_id, call.livemode)
    except NotFound as exc:
        raise InvalidRequest(exc.message, param="customer_id") from None
    clock_id = customer["test_clock_id"]
    if params.test_clock_id is not None:
        await clocks.check_clock(tx.conn, params.test_clock_id, call.livemode, "test_clock_id")
        if clock_id is not None and clock_id != params.test_clock_id:
            raise InvalidRequest(f"customer {customer['id']!r} lives on test clock {clock_id!r}", param="test_clock_id")
        clock_id = params.test_clock_id
    priced = await items.price_items(tx.conn, [(i.price_id, i.quantity) for i in params.items], call.livemode, "items")
    recurrence = items.recurrence(priced, "items")
    trial_days = params.trial_period_days if params.trial_period_days is not None else recurrence.trial_period_days or 0
    if params.default_payment_method is not None:
        await check_payment_method(
            call, params.default_payment_method, "default_payment_method", tx=tx, customer_id=customer["id"]
        )
    elif trial_days == 0:
        raise InvalidRequest(
            "default_payment_method is required for a subscription without a trial",
            param="default_payment_method",
        )
    now = await clocks.now_for(tx.conn, call, clock_id)
    sub = transitions.new_subscription(
        livemode=call.livemode,
        customer_id=customer["id"],
        stored_items=items.subscription_items(priced),
        recurrence=recurrence,
        payment_method=params.default_payment_method,
        trial_days=trial_days,
        clock_id=clock_id,
        now=now,
        metadata=params.metadata or {},
    )
    if sub["status"] == SubscriptionStatus.TRIALING:
        trial = transitions.start_trial(sub)
        await insert(tx, trial, now)
        await emit(tx, call, trial.events, now)
        return render(sub)

    period = (sub["current_period_start"], sub["current_period_end"])
    invoice = new_invoice(sub, "subscription_create", lines_for_period(sub, *period), period, now)
    await tx.conn.execute(subscriptions.insert().values(**sub))
    collected = await open_and_collect(tx, call, invoice, sub["default_payment_method"], now, with_pending=False)
    after = transitions.first_payment(sub, invoice["id"], collected.paid)
    await save(tx, sub, after, now)
    events = [event("created", after), *collected.created, *collected.outcome]
    if collected.paid:
        events.append(event("started", after))
    await emit(tx, call, events, now)
    await reschedule(tx, after, now)
    return render(after)


async def start_from_checkout(
    tx: Tx,
    call: Call,
    *,
    session: dict[str, Any],
    customer_id: str,
    priced: list[items.PricedItem],
    payment_method: str,
    paid_intent: dict[str, Any] | None,
    now: float,
) -> tuple[dict[str, Any], list[NewEvent]]:
    """The subscription a completed checkout creates, and its events (the caller appends them).

    Without a trial the session's payment intent has already been charged: it pays the first
    invoice. With one, nothing is charged now.
    """
    recurrence = items.recurrence(priced, "line_items")
    trial_days = session["trial_period_days"]
    if trial_days is None:
        trial_days = recurrence.trial_period_days or 0
    sub = transitions.new_subscription(
        livemode=call.livemode,
        customer_id=customer_id,
        stored_items=items.subscription_items(priced),
        recurrence=recurrence,
        payment_method=payment_method,
        trial_days=trial_days,
        clock_id=session["test_clock_id"],
        now=now,
        metadata=session["subscription_metadata"] or {},
        checkout_session_id=session["id"],
    )
    if sub["status"] == SubscriptionStatus.TRIALING:
        trial = transitions.start_trial(sub)
        await insert(tx, trial, now)
        return sub, trial.events
    assert paid_intent is not None
    period = (sub["current_period_start"], sub["current_period_end"])
    invoice = new_invoice(sub, "subscription_create", lines_for_period(sub, *period), period, now)
    intent = {**paid_intent, "invoice_id": invoice["id"], "customer_id": customer_id}
    created = invoices.render(invoice)
    invoice = mark_paid(invoice, intent, now)
    sub = transitions.first_payment(sub, invoice["id"], paid=True)
    await tx.conn.execute(subscriptions.insert().values(**sub))
    await tx.conn.execute(invoices_table.insert().values(**invoice))
    await tx.conn.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent["id"])
        .values(invoice_id=invoice["id"], customer_id=customer_id)
    )
    await reschedule(tx, sub, now)
    events = [
        event("created", sub),
        NewEvent("invoice.created", created),
        NewEvent("payment_intent.succeeded", payments.render(intent)),
        NewEvent("invoice.paid", invoices.render(invoice)),
        event("started", sub),
    ]
    return sub, events


def proration_lines(
    old: list[dict[str, Any]], new: list[dict[str, Any]], period: tuple[int, int], at: int
) -> list[dict[str, Any]]:
    """Credit the unused time of items that changed, charge the new ones for the time left.

    Prorated to the second over [at, period end); each line is rounded half-even on its own, and
    an invoice's total is the exact sum of its lines. Unchanged items produce no lines.
    """
    start, end = period

    def key(item: dict[str, Any]) -> tuple[str, int]:
        return str(item["price_id"]), int(item["quantity"])

    old_keys, new_keys = {key(i) for i in old}, {key(i) for i in new}
    lines = []
    remaining, total = end - max(min(at, end), start), end - start
    for item, sign, label in [
        *[(i, -1, "Unused time on") for i in old if key(i) not in new_keys],
        *[(i, 1, "Remaining time on") for i in new if key(i) not in old_keys],
    ]:
        amount = money.prorate(int(item["unit_amount"]) * int(item["quantity"]), remaining, total)
        lines.append(
            {
                "id": new_id("il"),
                "description": f"{label} {item['quantity']} x {item['price_id']} after {iso(at)}",
                "price_id": item["price_id"],
                "quantity": item["quantity"],
                "amount": sign * amount,
                "proration": True,
                "period": {"start": end - remaining, "end": end},
            }
        )
    return lines


async def update(tx: Tx, call: Call, subscription_id: str, params: SubscriptionUpdate) -> Declinable[dict[str, Any]]:
    """`PUT /api/subscriptions/{id}`. Raising the recurring amount of an active subscription
    charges the proration now (a decline changes nothing but the failed payment); lowering it
    leaves the proration as credit on the next invoice."""
    before = await load(tx, subscription_id, call.livemode)
    if before["status"] in ENDED:
        raise StateError(f"subscription {subscription_id!r} is {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    fields = params.model_fields_set
    after = dict(before)
    if params.default_payment_method is not None:
        await check_payment_method(
            call, params.default_payment_method, "default_payment_method", tx=tx, customer_id=before["customer_id"]
        )
        after["default_payment_method"] = params.default_payment_method
    if "metadata" in fields:
        after["metadata"] = objects.merge_metadata(before["metadata"], params.metadata)
    if params.cancel_at_period_end is not None and params.cancel_at_period_end != before["cancel_at_period_end"]:
        after.update(transitions.cancel_at_period_end(before, params.cancel_at_period_end, now))
    proration: list[dict[str, Any]] = []
    if params.items is not None:
        priced = await items.price_items(
            tx.conn, [(i.price_id, i.quantity) for i in params.items], call.livemode, "items"
        )
        recurrence = items.recurrence(priced, "items")
        if (recurrence.currency, recurrence.interval, recurrence.interval_count) != (
            before["currency"], before["interval"], before["interval_count"],
        ):  # fmt: skip
            raise InvalidRequest("new prices must have the subscription's currency and billing interval", param="items")
        after["items"] = items.subscription_items(priced, before["items"], [i.id for i in params.items])
        period = (before["current_period_start"], before["current_period_end"])
        if (
            params.proration_behavior == "create_prorations"
            and before["status"] == SubscriptionStatus.ACTIVE
            and now < period[1]
        ):
            proration = proration_lines(before["items"], after["items"], period, int(now))

    upgrade = bool(proration) and items.recurring_amount(after["items"]) > items.recurring_amount(before["items"])
    events: list[NewEvent] = []
    if upgrade:
        period = (int(now), before["current_period_end"])
        invoice = new_invoice(before, "subscription_update", proration, period, now)
        collected = await open_and_collect(tx, call, invoice, after["default_payment_method"], now, with_pending=False)
        if not collected.paid:
            return await _void_declined(tx, call, before, collected, now)
        after["latest_invoice_id"] = invoice["id"]
        await save(tx, before, after, now)
        events = [*collected.created, *collected.outcome, event("upgraded", after)]
    else:
        await invoices.add_pending_lines(tx, before["id"], proration, livemode=call.livemode, now=now)
        await save(tx, before, after, now)
    await emit(tx, call, [*events, *updated_events(before, after)], now)
    if after["cancel_at_period_end"] != before["cancel_at_period_end"]:
        await reschedule(tx, after, now)
    return Declinable(render(after))


async def _void_declined(
    tx: Tx, call: Call, sub: dict[str, Any], collected: Collection, now: float
) -> Declinable[dict[str, Any]]:
    """An upgrade whose proration was declined: keep the failed payment on record, void its
    invoice, leave the subscription as it was."""
    invoice = {**collected.invoice, "status": InvoiceStatus.VOID, "next_payment_attempt": None}
    await tx.conn.execute(
        invoices_table.update().where(invoices_table.c.id == invoice["id"]).values(status=InvoiceStatus.VOID)
    )
    voided = NewEvent("invoice.voided", invoices.render(invoice))
    await emit(tx, call, [*collected.created, *collected.outcome, voided], now)
    intent = collected.intent
    assert intent is not None and intent["last_payment_error"] is not None
    return Declinable(render(sub), Declined(intent["last_payment_error"], payments.render(intent)))


async def cancel(tx: Tx, call: Call, subscription_id: str, *, at_period_end: bool) -> dict[str, Any]:
    before = await load(tx, subscription_id, call.livemode)
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    change = transitions.cancel(before, now, at_period_end=at_period_end)
    return render(before) if change is None else await apply(tx, call, before, change, now)


async def pause(tx: Tx, call: Call, subscription_id: str) -> dict[str, Any]:
    """Stop billing: no invoices while paused (its pending jobs are canceled)."""
    before = await load(tx, subscription_id, call.livemode)
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    return await apply(tx, call, before, transitions.pause(before, now), now)


async def resume(tx: Tx, call: Call, subscription_id: str) -> dict[str, Any]:
    """A new period starts now (the new billing anchor) and is charged; a failed charge makes
    the subscription past_due, with the usual retries."""
    before = await load(tx, subscription_id, call.livemode)
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    after = transitions.resume_period(before, now)
    start = after["current_period_start"]
    period = (start, after["current_period_end"])
    invoice = new_invoice(after, "subscription_resume", lines_for_period(after, *period), period, now)
    collected = await open_and_collect(tx, call, invoice, after["default_payment_method"], now, with_pending=True)
    after.update(
        latest_invoice_id=invoice["id"],
        status=SubscriptionStatus.ACTIVE if collected.paid else SubscriptionStatus.PAST_DUE,
    )
    await save(tx, before, after, now)
    if not collected.paid:
        await schedule_retry(tx, after, collected, 1, start)
    events = [event("resumed", after), *collected.created, *collected.outcome, *updated_events(before, after)]
    await emit(tx, call, events, now)
    await reschedule(tx, after, now)
    return render(after)


def listing(livemode: bool, *, customer_id: str | None = None, status: str | None = None) -> sa.Select[Any]:
    query = sa.select(subscriptions).where(subscriptions.c.livemode == livemode)
    if customer_id:
        query = query.where(subscriptions.c.customer_id == customer_id)
    if status:
        query = query.where(subscriptions.c.status == status)
    return query

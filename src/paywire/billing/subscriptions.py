"""Subscriptions: every change of state, by call or by due time, with its events in contract order.

Each function runs inside the caller's transaction: it writes the subscription, its invoices
and payment intents, its jobs, and appends the events, so they commit (or roll back) together.
Events of one transition carry the subscription as it is after the whole transition; only
`customer.subscription.updated` carries `previous_attributes`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import clocks, invoices, items, jobs, money, payments, periods
from paywire.billing.collection import Collection, collect_again, mark_paid, open_and_collect
from paywire.billing.declines import Declined, Outcome, check_payment_method
from paywire.billing.runtime import Call
from paywire.billing.schemas import SubscriptionCreate, SubscriptionUpdate
from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.db.schema import customers, invoices as invoices_table, payment_intents, subscriptions
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.events.log import NewEvent, append
from paywire.ids import new_id

DAY = periods.DAY
TRIAL_NOTICE = 3 * DAY
DUNNING_DAYS = (1, 3, 5)  # retries after the first failure; a failed last retry cancels
INCOMPLETE_EXPIRES_AFTER = 23 * 3600
LIFECYCLE_JOBS = (jobs.TRIAL_WILL_END, jobs.TRIAL_END, jobs.RENEWAL, jobs.CANCEL, jobs.INCOMPLETE_EXPIRE)
ENDED = ("canceled", "incomplete_expired")
PREFIX = "customer.subscription."


def render(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "subscription"),
        "customer_id": m["customer_id"],
        "status": m["status"],
        "items": [items.render_item(item) for item in m["items"]],
        "currency": m["currency"],
        "recurring": {"interval": m["interval"], "interval_count": m["interval_count"]},
        "default_payment_method": m["default_payment_method"],
        "billing_cycle_anchor": m["billing_cycle_anchor"],
        "current_period_start": m["current_period_start"],
        "current_period_end": m["current_period_end"],
        "trial_start": m["trial_start"],
        "trial_end": m["trial_end"],
        "cancel_at_period_end": m["cancel_at_period_end"],
        "cancel_at": m["cancel_at"],
        "canceled_at": m["canceled_at"],
        "ended_at": m["ended_at"],
        "paused_at": m["paused_at"],
        "latest_invoice_id": m["latest_invoice_id"],
        "checkout_session_id": m["checkout_session_id"],
        "test_clock_id": m["test_clock_id"],
    }


def _event(kind: str, sub: dict[str, Any]) -> NewEvent:
    return NewEvent(PREFIX + kind, render(sub))


def _updated(before: dict[str, Any], after: dict[str, Any]) -> list[NewEvent]:
    """`.updated` with `previous_attributes`, if any API field changed."""
    old, new = render(before), render(after)
    changed = objects.previous(old, new)
    return [NewEvent(PREFIX + "updated", new, changed)] if changed else []


def _period_after(sub: dict[str, Any], start: int) -> int:
    """The end of the period that starts at boundary `start` (dates from the anchor)."""
    return periods.next_boundary(sub["billing_cycle_anchor"], sub["interval"], sub["interval_count"], start)


async def _emit(tx: Tx, call: Call, events: list[NewEvent], now: float) -> None:
    await append(tx, events, livemode=call.livemode, now=now, request=call.request)


async def _load(tx: Tx, subscription_id: str, livemode: bool | None = None) -> dict[str, Any]:
    query = sa.select(subscriptions).where(subscriptions.c.id == subscription_id)
    if livemode is not None:
        query = query.where(subscriptions.c.livemode == livemode)
    row = (await tx.conn.execute(query.with_for_update())).mappings().first()
    if row is None:
        raise NotFound(f"no such subscription: {subscription_id!r}", param="id")
    return dict(row)


async def _save(tx: Tx, before: dict[str, Any], after: dict[str, Any], now: float) -> None:
    changed = {k: v for k, v in after.items() if before.get(k) != v and k not in ("seq", "id")}
    if changed:
        changed["updated"] = int(now)
        after["updated"] = int(now)
        await tx.conn.execute(subscriptions.update().where(subscriptions.c.id == before["id"]).values(**changed))


async def reschedule(tx: Tx, sub: dict[str, Any], now: float) -> None:
    """Derive the subscription's next time-driven transitions from its state."""
    await jobs.cancel(tx, sub["id"], LIFECYCLE_JOBS, now=now)

    async def at(kind: str, due: int) -> None:
        await jobs.schedule(
            tx, kind=kind, object_id=sub["id"], due=due, livemode=sub["livemode"],
            clock_id=sub["test_clock_id"], now=now,
        )  # fmt: skip

    status = sub["status"]
    if status == "trialing":
        # 3 days before the trial ends, or at once for a shorter trial (due at its start).
        await at(jobs.TRIAL_WILL_END, max(sub["trial_start"], sub["trial_end"] - TRIAL_NOTICE))
        await at(jobs.CANCEL if sub["cancel_at_period_end"] else jobs.TRIAL_END, sub["trial_end"])
    elif status in ("active", "past_due"):
        await at(jobs.CANCEL if sub["cancel_at_period_end"] else jobs.RENEWAL, sub["current_period_end"])
    elif status == "incomplete":
        await at(jobs.INCOMPLETE_EXPIRE, sub["created"] + INCOMPLETE_EXPIRES_AFTER)


async def _schedule_retry(tx: Tx, sub: dict[str, Any], invoice: dict[str, Any], attempt: int, first: int) -> int:
    due = first + DUNNING_DAYS[attempt - 1] * DAY
    await jobs.schedule(
        tx, kind=jobs.DUNNING_RETRY, object_id=sub["id"], due=due, livemode=sub["livemode"],
        clock_id=sub["test_clock_id"], now=first,
        payload={"invoice_id": invoice["id"], "attempt": attempt, "first_failed_at": first},
    )  # fmt: skip
    await tx.conn.execute(
        invoices_table.update().where(invoices_table.c.id == invoice["id"]).values(next_payment_attempt=due)
    )
    invoice["next_payment_attempt"] = due
    return due


def _lines_for_period(sub: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
    return [items.period_line(item, start, end) for item in sub["items"]]


def _invoice(sub: dict[str, Any], reason: str, lines: list[dict[str, Any]], period: tuple[int, int], now: float) -> dict[str, Any]:
    return invoices.build(
        livemode=sub["livemode"], customer_id=sub["customer_id"], subscription_id=sub["id"],
        currency=sub["currency"], lines=lines, billing_reason=reason, period=period,
        clock_id=sub["test_clock_id"], now=now,
    )  # fmt: skip


# --- creation -----------------------------------------------------------------------------


def build(
    *,
    livemode: bool,
    customer_id: str,
    stored_items: list[dict[str, Any]],
    recurrence: items.Recurrence,
    payment_method: str | None,
    trial_days: int,
    clock_id: str | None,
    now: float,
    metadata: dict[str, str],
    checkout_session_id: str | None = None,
) -> dict[str, Any]:
    """A new subscription's row: trialing until the trial ends, else active from now."""
    start = int(now)
    trial_end = start + trial_days * DAY if trial_days > 0 else None
    anchor = trial_end or start
    interval, count = recurrence.interval, recurrence.interval_count
    return {
        "id": new_id("sub"),
        "livemode": livemode,
        "customer_id": customer_id,
        "status": "trialing" if trial_end else "active",
        "items": stored_items,
        "currency": recurrence.currency,
        "interval": interval,
        "interval_count": count,
        "default_payment_method": payment_method,
        "billing_cycle_anchor": anchor,
        "current_period_start": start,
        "current_period_end": trial_end or periods.add_interval(anchor, interval, count, 1),
        "trial_start": start if trial_end else None,
        "trial_end": trial_end,
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "paused_at": None,
        "latest_invoice_id": None,
        "checkout_session_id": checkout_session_id,
        "test_clock_id": clock_id,
        "metadata": metadata,
        "created": start,
        "updated": start,
    }


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
            raise InvalidRequest(
                f"customer {customer['id']!r} lives on test clock {clock_id!r}", param="test_clock_id"
            )
        clock_id = params.test_clock_id
    priced = await items.price_items(
        tx.conn, [(i.price_id, i.quantity) for i in params.items], call.livemode, "items"
    )
    recurrence = items.recurrence(priced, "items")
    trial_days = (
        params.trial_period_days if params.trial_period_days is not None else recurrence.trial_period_days or 0
    )
    if params.default_payment_method is not None:
        await check_payment_method(call, params.default_payment_method, "default_payment_method")
    elif trial_days == 0:
        raise InvalidRequest(
            "default_payment_method is required for a subscription without a trial",
            param="default_payment_method",
        )
    now = await clocks.now_for(tx.conn, call, clock_id)
    sub = build(
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
    if sub["status"] == "trialing":
        await tx.conn.execute(subscriptions.insert().values(**sub))
        await _emit(tx, call, [_event("created", sub), _event("trial_start", sub)], now)
        await reschedule(tx, sub, now)
        return render(sub)

    period = (sub["current_period_start"], sub["current_period_end"])
    invoice = _invoice(sub, "subscription_create", _lines_for_period(sub, *period), period, now)
    await tx.conn.execute(subscriptions.insert().values(**sub))
    collected = await open_and_collect(tx, call, invoice, sub["default_payment_method"], now, with_pending=False)
    after = {**sub, "latest_invoice_id": invoice["id"], "status": "active" if collected.paid else "incomplete"}
    await _save(tx, sub, after, now)
    events = [_event("created", after), *collected.created, *collected.outcome]
    if collected.paid:
        events.append(_event("started", after))
    await _emit(tx, call, events, now)
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
    sub = build(
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
    if sub["status"] == "trialing":
        await tx.conn.execute(subscriptions.insert().values(**sub))
        await reschedule(tx, sub, now)
        return sub, [_event("created", sub), _event("trial_start", sub)]
    assert paid_intent is not None
    period = (sub["current_period_start"], sub["current_period_end"])
    invoice = _invoice(sub, "subscription_create", _lines_for_period(sub, *period), period, now)
    intent = {**paid_intent, "invoice_id": invoice["id"], "customer_id": customer_id}
    created = invoices.render(invoice)
    invoice = mark_paid(invoice, intent, now)
    sub["latest_invoice_id"] = invoice["id"]
    await tx.conn.execute(subscriptions.insert().values(**sub))
    await tx.conn.execute(invoices_table.insert().values(**invoice))
    await tx.conn.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent["id"])
        .values(invoice_id=invoice["id"], customer_id=customer_id)
    )
    await reschedule(tx, sub, now)
    events = [
        _event("created", sub),
        NewEvent("invoice.created", created),
        NewEvent("payment_intent.succeeded", payments.render(intent)),
        NewEvent("invoice.paid", invoices.render(invoice)),
        _event("started", sub),
    ]
    return sub, events


# --- changes by call ----------------------------------------------------------------------


def proration_lines(
    old: list[dict[str, Any]], new: list[dict[str, Any]], period: tuple[int, int], at: int
) -> list[dict[str, Any]]:
    """Credit the unused time of items that changed, charge the new ones for the time left.

    Prorated to the second over [at, period end); each line is rounded half-even on its own, and
    an invoice's total is the exact sum of its lines. Unchanged items produce no lines.
    """
    start, end = period
    key = lambda item: (item["price_id"], int(item["quantity"]))  # noqa: E731
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
                "description": f"{label} {item['quantity']} × {item['price_id']} after {iso(at)}",
                "price_id": item["price_id"],
                "quantity": item["quantity"],
                "amount": sign * amount,
                "proration": True,
                "period": {"start": end - remaining, "end": end},
            }
        )
    return lines


async def update(tx: Tx, call: Call, subscription_id: str, params: SubscriptionUpdate) -> Outcome[dict[str, Any]]:
    """`PUT /api/subscriptions/{id}`. Raising the recurring amount of an active subscription
    charges the proration now (a decline changes nothing but the failed payment); lowering it
    leaves the proration as credit on the next invoice."""
    before = await _load(tx, subscription_id, call.livemode)
    if before["status"] in ENDED:
        raise StateError(f"subscription {subscription_id!r} is {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    fields = params.model_fields_set
    after = dict(before)
    if params.default_payment_method is not None:
        await check_payment_method(call, params.default_payment_method, "default_payment_method")
        after["default_payment_method"] = params.default_payment_method
    if "metadata" in fields:
        after["metadata"] = objects.merge_metadata(before["metadata"], params.metadata)
    if params.cancel_at_period_end is not None and params.cancel_at_period_end != before["cancel_at_period_end"]:
        if before["status"] not in ("trialing", "active", "past_due"):
            raise StateError(f"a {before['status']} subscription cannot be canceled at period end")
        on = params.cancel_at_period_end
        after.update(
            cancel_at_period_end=on,
            cancel_at=before["current_period_end"] if on else None,
            canceled_at=int(now) if on else None,
        )
    proration: list[dict[str, Any]] = []
    if params.items is not None:
        priced = await items.price_items(
            tx.conn, [(i.price_id, i.quantity) for i in params.items], call.livemode, "items"
        )
        recurrence = items.recurrence(priced, "items")
        if (recurrence.currency, recurrence.interval, recurrence.interval_count) != (
            before["currency"], before["interval"], before["interval_count"],
        ):  # fmt: skip
            raise InvalidRequest(
                "new prices must have the subscription's currency and billing interval", param="items"
            )
        after["items"] = items.subscription_items(priced, before["items"])
        period = (before["current_period_start"], before["current_period_end"])
        if params.proration_behavior == "create_prorations" and before["status"] == "active" and now < period[1]:
            proration = proration_lines(before["items"], after["items"], period, int(now))

    upgrade = bool(proration) and items.recurring_amount(after["items"]) > items.recurring_amount(before["items"])
    events: list[NewEvent] = []
    if upgrade:
        period = (int(now), before["current_period_end"])
        invoice = _invoice(before, "subscription_update", proration, period, now)
        collected = await open_and_collect(
            tx, call, invoice, after["default_payment_method"], now, with_pending=False
        )
        if not collected.paid:
            return await _void_declined(tx, call, before, collected, now)
        after["latest_invoice_id"] = invoice["id"]
        await _save(tx, before, after, now)
        events = [*collected.created, *collected.outcome, _event("upgraded", after)]
    else:
        await invoices.add_pending_lines(tx, before["id"], proration, livemode=call.livemode, now=now)
        await _save(tx, before, after, now)
    await _emit(tx, call, [*events, *_updated(before, after)], now)
    if after["cancel_at_period_end"] != before["cancel_at_period_end"]:
        await reschedule(tx, after, now)
    return Outcome(render(after))


async def _void_declined(
    tx: Tx, call: Call, sub: dict[str, Any], collected: Collection, now: float
) -> Outcome[dict[str, Any]]:
    """An upgrade whose proration was declined: keep the failed payment on record, void its
    invoice, leave the subscription as it was."""
    invoice = {**collected.invoice, "status": "void", "next_payment_attempt": None}
    await tx.conn.execute(
        invoices_table.update().where(invoices_table.c.id == invoice["id"]).values(status="void")
    )
    voided = NewEvent("invoice.voided", invoices.render(invoice))
    await _emit(tx, call, [*collected.created, *collected.outcome, voided], now)
    intent = collected.intent
    assert intent is not None and intent["last_payment_error"] is not None
    return Outcome(render(sub), Declined(intent["last_payment_error"], payments.render(intent)))


async def cancel(tx: Tx, call: Call, subscription_id: str, *, at_period_end: bool) -> dict[str, Any]:
    before = await _load(tx, subscription_id, call.livemode)
    if before["status"] in ENDED:
        raise StateError(f"subscription {subscription_id!r} is already {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    if at_period_end:
        if before["status"] not in ("trialing", "active", "past_due"):
            raise StateError(
                f"a {before['status']} subscription cannot be canceled at period end; cancel it now"
            )
        if before["cancel_at_period_end"]:
            return render(before)
        after = {
            **before,
            "cancel_at_period_end": True,
            "cancel_at": before["current_period_end"],
            "canceled_at": int(now),
        }
        await _save(tx, before, after, now)
        await _emit(tx, call, _updated(before, after), now)
        await reschedule(tx, after, now)
        return render(after)
    after = await _end(tx, before, now, canceled_at=int(now))
    await _emit(tx, call, [_event("deleted", after)], now)
    return render(after)


async def _end(
    tx: Tx, before: dict[str, Any], now: float, *, canceled_at: int | None, status: str = "canceled"
) -> dict[str, Any]:
    after = {
        **before,
        "status": status,
        "canceled_at": canceled_at if canceled_at is not None else before["canceled_at"],
        "ended_at": int(now),
        "cancel_at_period_end": False,
        "cancel_at": None,
    }
    await _save(tx, before, after, now)
    await jobs.cancel(tx, before["id"], None, now=now)
    return after


async def pause(tx: Tx, call: Call, subscription_id: str) -> dict[str, Any]:
    """Stop billing: no invoices while paused (its pending jobs are canceled)."""
    before = await _load(tx, subscription_id, call.livemode)
    if before["status"] not in ("active", "trialing"):
        raise StateError(f"only an active or trialing subscription can be paused; this one is {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    after = {**before, "status": "paused", "paused_at": int(now)}
    await _save(tx, before, after, now)
    await jobs.cancel(tx, before["id"], None, now=now)
    await _emit(tx, call, [_event("paused", after), *_updated(before, after)], now)
    return render(after)


async def resume(tx: Tx, call: Call, subscription_id: str) -> dict[str, Any]:
    """A new period starts now (the new billing anchor) and is charged; a failed charge makes
    the subscription past_due, with the usual retries."""
    before = await _load(tx, subscription_id, call.livemode)
    if before["status"] != "paused":
        raise StateError(f"only a paused subscription can be resumed; this one is {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    start = int(now)
    after = {**before, "billing_cycle_anchor": start, "paused_at": None, "current_period_start": start}
    if after["trial_end"] is not None and after["trial_end"] > start:
        after["trial_end"] = start  # resuming ends a paused trial
    after["current_period_end"] = _period_after(after, start)
    period = (start, after["current_period_end"])
    invoice = _invoice(after, "subscription_resume", _lines_for_period(after, *period), period, now)
    collected = await open_and_collect(tx, call, invoice, after["default_payment_method"], now, with_pending=True)
    after.update(latest_invoice_id=invoice["id"], status="active" if collected.paid else "past_due")
    await _save(tx, before, after, now)
    events = [_event("resumed", after), *collected.created, *collected.outcome, *_updated(before, after)]
    await _emit(tx, call, events, now)
    await reschedule(tx, after, now)
    if not collected.paid:
        await _schedule_retry(tx, after, collected.invoice, 1, start)
    return render(after)


async def settle_paid_invoice(tx: Tx, call: Call, invoice: dict[str, Any], now: float) -> list[NewEvent]:
    """A late payment of a subscription's invoice (retry, `/pay`): the "card pays" events.

    `started` for the first paid period, `renewed` for a renewal, then `.updated` (status back to
    active). The invoice's own payment events come first, from the caller.
    """
    if invoice["subscription_id"] is None:
        return []
    before = await _load(tx, invoice["subscription_id"])
    if before["status"] in ENDED:
        return []
    after = dict(before)
    if before["status"] in ("past_due", "incomplete") and before["latest_invoice_id"] == invoice["id"]:
        after["status"] = "active"
    await _save(tx, before, after, now)
    await jobs.cancel(tx, before["id"], (jobs.DUNNING_RETRY,), now=now)
    if after["status"] != before["status"]:
        await reschedule(tx, after, now)
    specific = {"subscription_create": "started", "subscription_cycle": "renewed"}.get(invoice["billing_reason"])
    return [*([_event(specific, after)] if specific else []), *_updated(before, after)]


# --- changes by time (scheduler and test clocks) ------------------------------------------


async def on_trial_will_end(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await _load(tx, job["object_id"])
    if sub["status"] != "trialing" or sub["trial_end"] is None:
        return
    if job["due"] == max(sub["trial_start"], sub["trial_end"] - TRIAL_NOTICE):  # still this trial's notice
        await _emit(tx, call, [_event("trial_will_end", sub)], now)


async def _charge_period(
    tx: Tx, call: Call, before: dict[str, Any], start: int, reason: str, now: float, first: list[NewEvent]
) -> None:
    """Start the period at `start` and charge it: trial end and renewal share this."""
    after = {**before, "current_period_start": start}
    after["current_period_end"] = _period_after(after, start)
    period = (start, after["current_period_end"])
    invoice = _invoice(after, reason, _lines_for_period(after, *period), period, now)
    collected = await open_and_collect(tx, call, invoice, after["default_payment_method"], now, with_pending=True)
    after.update(latest_invoice_id=invoice["id"], status="active" if collected.paid else "past_due")
    await _save(tx, before, after, now)
    specific = {"subscription_create": "started", "subscription_cycle": "renewed"}[reason]
    paid = [_event(specific, after)] if collected.paid else []
    events = [*first, *collected.created, *collected.outcome, *paid, *_updated(before, after)]
    await _emit(tx, call, events, now)
    await reschedule(tx, after, now)
    if not collected.paid:
        await _schedule_retry(tx, after, collected.invoice, 1, int(now))


async def on_trial_end(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await _load(tx, job["object_id"])
    if sub["status"] != "trialing" or sub["trial_end"] != job["due"] or sub["cancel_at_period_end"]:
        return
    await _charge_period(tx, call, sub, sub["trial_end"], "subscription_create", now, [_event("trial_end", sub)])


async def on_renewal(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await _load(tx, job["object_id"])
    if sub["status"] not in ("active", "past_due") or sub["current_period_end"] != job["due"]:
        return
    if sub["cancel_at_period_end"]:
        return
    await _charge_period(tx, call, sub, sub["current_period_end"], "subscription_cycle", now, [])


async def on_cancel(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await _load(tx, job["object_id"])
    if sub["status"] in ENDED or not sub["cancel_at_period_end"] or sub["current_period_end"] != job["due"]:
        return
    after = await _end(tx, sub, now, canceled_at=None)
    await _emit(tx, call, [_event("deleted", after)], now)


async def on_incomplete_expire(tx: Tx, call: Call, job: Any, now: float) -> None:
    sub = await _load(tx, job["object_id"])
    if sub["status"] != "incomplete":
        return
    events = []
    if sub["latest_invoice_id"]:
        row = (
            await tx.conn.execute(sa.select(invoices_table).where(invoices_table.c.id == sub["latest_invoice_id"]))
        ).mappings().first()
        if row is not None and row["status"] == "open":
            await tx.conn.execute(
                invoices_table.update().where(invoices_table.c.id == row["id"]).values(status="void", updated=int(now))
            )
            events.append(NewEvent("invoice.voided", invoices.render({**row, "status": "void"})))
    after = await _end(tx, sub, now, canceled_at=None, status="incomplete_expired")
    await _emit(tx, call, [*events, _event("deleted", after)], now)


async def on_dunning_retry(tx: Tx, call: Call, job: Any, now: float) -> None:
    """Retry a failed invoice (after 1, 3 and 5 days); the last failure cancels the subscription."""
    sub = await _load(tx, job["object_id"])
    invoice_id = job["payload"]["invoice_id"]
    row = (await tx.conn.execute(sa.select(invoices_table).where(invoices_table.c.id == invoice_id))).mappings().first()
    if row is None or row["status"] != "open" or sub["status"] in ENDED or sub["status"] == "paused":
        return
    collected = await collect_again(tx, call, row, sub["default_payment_method"], now)
    if collected.paid:
        await _emit(tx, call, [*collected.outcome, *await settle_paid_invoice(tx, call, collected.invoice, now)], now)
        return
    attempt, first = int(job["payload"]["attempt"]), int(job["payload"]["first_failed_at"])
    if attempt < len(DUNNING_DAYS):
        await _schedule_retry(tx, sub, collected.invoice, attempt + 1, first)
        await _emit(tx, call, collected.outcome, now)
        return
    invoice = {**collected.invoice, "status": "uncollectible", "next_payment_attempt": None}
    await tx.conn.execute(
        invoices_table.update()
        .where(invoices_table.c.id == invoice_id)
        .values(status="uncollectible", next_payment_attempt=None)
    )
    after = await _end(tx, sub, now, canceled_at=int(now))
    uncollectible = NewEvent("invoice.marked_uncollectible", invoices.render(invoice))
    await _emit(tx, call, [*collected.outcome, uncollectible, _event("deleted", after)], now)


def listing(livemode: bool, *, customer_id: str | None = None, status: str | None = None) -> sa.Select[Any]:
    query = sa.select(subscriptions).where(subscriptions.c.livemode == livemode)
    if customer_id:
        query = query.where(subscriptions.c.customer_id == customer_id)
    if status:
        query = query.where(subscriptions.c.status == status)
    return query

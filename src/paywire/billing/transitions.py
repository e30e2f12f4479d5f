"""Subscription transitions as pure functions: the state before and the input in, a
`Transition` (state after, events, due jobs) out. No SQL here: `subscription_state.apply`
stores what these decide, so each rule can be tested without a database.

A new subscription (`new_subscription`), its trial's start, cancel and pause are whole
transitions. A charged start, a resume and an update charge the payer between deciding and
storing, so only their decisions live here (`first_payment`, `resume_period`,
`cancel_at_period_end`). A renewal (and a trial's end) is decided the same way, in
`renewals.py` beside the batch that writes many at once: `open_period` moves the subscription on
to its new period and opens its invoice and payment intent, the provider is asked, and
`charged_period` turns the answer into the state after, the dunning retry and the events.
"""

from __future__ import annotations

from typing import Any

from paywire.billing import items, periods
from paywire.billing.statuses import SubscriptionStatus
from paywire.billing.subscription_state import (
    ENDED,
    LIVE,
    PAUSABLE,
    Transition,
    ended,
    event,
    period_after,
    updated_events,
)
from paywire.errors import StateError
from paywire.ids import new_id


def new_subscription(
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
    trial_end = start + trial_days * periods.DAY if trial_days > 0 else None
    anchor = trial_end or start
    interval, count = recurrence.interval, recurrence.interval_count
    return {
        "id": new_id("sub"),
        "livemode": livemode,
        "customer_id": customer_id,
        "status": SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE,
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


def start_trial(sub: dict[str, Any]) -> Transition:
    """A new subscription that starts in its trial: nothing is charged until the trial ends."""
    return Transition(sub, [event("created", sub), event("trial_start", sub)])


def first_payment(sub: dict[str, Any], invoice_id: str, paid: bool) -> dict[str, Any]:
    """A new subscription once its first invoice's charge is known: active if it was paid, else
    incomplete (it expires unless the invoice is paid in time)."""
    status = SubscriptionStatus.ACTIVE if paid else SubscriptionStatus.INCOMPLETE
    return {**sub, "latest_invoice_id": invoice_id, "status": status}


def cancel(before: dict[str, Any], now: float, *, at_period_end: bool) -> Transition | None:
    """Cancel now (it ends, its jobs stop) or at its period's end; None: already set to end then."""
    if before["status"] in ENDED:
        raise StateError(f"subscription {before['id']!r} is already {before['status']}")
    if not at_period_end:
        after = ended(before, now, canceled_at=int(now))
        return Transition(after, [event("deleted", after)], stops_jobs=True)
    if before["cancel_at_period_end"] and before["status"] in LIVE:
        return None
    after = {**before, **cancel_at_period_end(before, True, now)}
    return Transition(after, updated_events(before, after))


def cancel_at_period_end(before: dict[str, Any], on: bool, now: float) -> dict[str, Any]:
    """The fields that set (or, with `on` False, clear) a cancel at the current period's end."""
    if before["status"] not in LIVE:
        if not on:
            raise StateError(f"the cancel at period end of a {before['status']} subscription can no longer be cleared")
        raise StateError(f"a {before['status']} subscription cannot be canceled at period end; cancel it now")
    return {
        "cancel_at_period_end": on,
        "cancel_at": before["current_period_end"] if on else None,
        "canceled_at": int(now) if on else None,
    }


def pause(before: dict[str, Any], now: float) -> Transition:
    """Stop billing: no invoices while paused (its pending jobs stop)."""
    if before["status"] not in PAUSABLE:
        raise StateError(f"only an active or trialing subscription can be paused; this one is {before['status']}")
    after = {**before, "status": SubscriptionStatus.PAUSED, "paused_at": int(now)}
    return Transition(after, [event("paused", after), *updated_events(before, after)], stops_jobs=True)


def resume_period(before: dict[str, Any], now: float) -> dict[str, Any]:
    """A paused subscription's state on resuming, before its charge: a new period (and billing
    anchor) starts now, and a paused trial ends. The charge's outcome then sets its status."""
    if before["status"] != SubscriptionStatus.PAUSED:
        raise StateError(f"only a paused subscription can be resumed; this one is {before['status']}")
    start = int(now)
    after = {**before, "billing_cycle_anchor": start, "paused_at": None, "current_period_start": start}
    if after["trial_end"] is not None and after["trial_end"] > start:
        after["trial_end"] = start
    after["current_period_end"] = period_after(after, start)
    return after

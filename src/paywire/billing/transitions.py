"""Subscription transitions as pure functions: the state before and the input in, a
`Transition` (state after, events, due jobs) out. No SQL here: `subscription_state.apply`
stores what these decide, so each rule can be tested without a database.

Cancel and pause are whole transitions. A resume and an update charge the payer between
deciding and storing, so only their decisions live here (`resume_period`,
`cancel_at_period_end`); create and the renewals still decide and store in one function in
`subscriptions.py` and `renewals.py`.
"""

from __future__ import annotations

from typing import Any

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

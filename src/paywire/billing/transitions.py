"""Subscription transitions as pure functions: the state before and the input in, a
`Transition` (state after, events, due jobs) out. No SQL here: `subscription_state.apply`
stores what these decide, so each rule can be tested without a database.

So far cancel and pause; the others (create, update, resume, renewals) still decide and store
in one function in `subscriptions.py` and `renewals.py`.
"""

from __future__ import annotations

from typing import Any

from paywire.billing.statuses import SubscriptionStatus
from paywire.billing.subscription_state import ENDED, LIVE, PAUSABLE, Transition, ended, event, updated_events
from paywire.errors import StateError


def cancel(before: dict[str, Any], now: float, *, at_period_end: bool) -> Transition | None:
    """Cancel now (it ends, its jobs stop) or at its period's end; None: already set to end then."""
    if before["status"] in ENDED:
        raise StateError(f"subscription {before['id']!r} is already {before['status']}")
    if not at_period_end:
        after = ended(before, now, canceled_at=int(now))
        return Transition(after, [event("deleted", after)], stops_jobs=True)
    if before["status"] not in LIVE:
        raise StateError(f"a {before['status']} subscription cannot be canceled at period end; cancel it now")
    if before["cancel_at_period_end"]:
        return None
    after = {**before, "cancel_at_period_end": True, "cancel_at": before["current_period_end"], "canceled_at": int(now)}
    return Transition(after, updated_events(before, after))


def pause(before: dict[str, Any], now: float) -> Transition:
    """Stop billing: no invoices while paused (its pending jobs stop)."""
    if before["status"] not in PAUSABLE:
        raise StateError(f"only an active or trialing subscription can be paused; this one is {before['status']}")
    after = {**before, "status": SubscriptionStatus.PAUSED, "paused_at": int(now)}
    return Transition(after, [event("paused", after), *updated_events(before, after)], stops_jobs=True)

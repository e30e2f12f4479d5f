"""Subscription transitions without a database: state and input in, state, events and jobs out."""

from __future__ import annotations

from typing import Any

import pytest

from paywire.billing import collection, items, jobs, renewals, subscription_state, transitions
from paywire.billing.runtime import Billing
from paywire.billing.statuses import SubscriptionStatus
from paywire.errors import StateError

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
MONTH_END = T0 + 31 * 86_400


def _sub(status: SubscriptionStatus = SubscriptionStatus.ACTIVE, **changes: Any) -> dict[str, Any]:
    return {
        "id": "sub_1", "livemode": False, "metadata": {}, "created": T0, "customer_id": "cus_1",
        "status": status, "items": [], "currency": "usd", "interval": "month", "interval_count": 1,
        "default_payment_method": "pm_card_visa", "billing_cycle_anchor": T0, "current_period_start": T0,
        "current_period_end": MONTH_END, "trial_start": None, "trial_end": None, "cancel_at_period_end": False,
        "cancel_at": None, "canceled_at": None, "ended_at": None, "paused_at": None, "latest_invoice_id": None,
        "checkout_session_id": None, "test_clock_id": None, **changes,
    }  # fmt: skip


def test_pause_stops_every_job_and_says_so() -> None:
    change = transitions.pause(_sub(), T0 + 10)
    assert change.after["status"] == "paused" and change.after["paused_at"] == T0 + 10
    assert [e.type for e in change.events] == ["customer.subscription.paused", "customer.subscription.updated"]
    assert change.stops_jobs and change.due() == []


def test_only_an_active_or_trialing_subscription_pauses() -> None:
    with pytest.raises(StateError):
        transitions.pause(_sub(SubscriptionStatus.PAST_DUE), T0)


def test_cancel_at_period_end_moves_the_renewal_to_a_cancel() -> None:
    change = transitions.cancel(_sub(), T0 + 5, at_period_end=True)
    assert change is not None and not change.stops_jobs
    assert change.after["cancel_at"] == MONTH_END and change.after["canceled_at"] == T0 + 5
    assert change.due() == [(jobs.CANCEL, MONTH_END)]
    assert transitions.cancel(change.after, T0 + 6, at_period_end=True) is None  # already set: nothing to do


def test_cancel_now_ends_it() -> None:
    change = transitions.cancel(_sub(), T0 + 5, at_period_end=False)
    assert change is not None and change.stops_jobs
    assert change.after["status"] == "canceled" and change.after["ended_at"] == T0 + 5
    assert [e.type for e in change.events] == ["customer.subscription.deleted"]
    with pytest.raises(StateError):
        transitions.cancel(change.after, T0 + 6, at_period_end=False)


def test_cancel_at_period_end_is_set_and_cleared_by_the_same_rule() -> None:
    on = transitions.cancel_at_period_end(_sub(), True, T0 + 5)
    assert on == {"cancel_at_period_end": True, "cancel_at": MONTH_END, "canceled_at": T0 + 5}
    off = transitions.cancel_at_period_end(_sub(**on), False, T0 + 6)
    assert off == {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}
    with pytest.raises(StateError, match="paused subscription cannot be canceled at period end"):
        transitions.cancel_at_period_end(_sub(SubscriptionStatus.PAUSED), True, T0)
    with pytest.raises(StateError, match="of a canceled subscription can no longer be cleared"):
        transitions.cancel_at_period_end(_sub(SubscriptionStatus.CANCELED, cancel_at_period_end=True), False, T0)
    with pytest.raises(StateError):  # cancel(at_period_end=True) keeps the same rule
        transitions.cancel(_sub(SubscriptionStatus.PAUSED, cancel_at_period_end=True), T0, at_period_end=True)


def test_resume_starts_a_new_period_and_anchor_now() -> None:
    now = T0 + 10 * 86_400 + 7
    after = transitions.resume_period(_sub(SubscriptionStatus.PAUSED, paused_at=T0 + 86_400), now)
    assert after["billing_cycle_anchor"] == after["current_period_start"] == now
    assert after["current_period_end"] == now + 31 * 86_400  # one month from the new anchor (January has 31 days)
    assert after["paused_at"] is None and after["status"] == "paused"  # the charge's outcome sets the status


def test_resume_ends_a_paused_trial_and_refuses_a_live_subscription() -> None:
    trial_end = T0 + 14 * 86_400
    after = transitions.resume_period(_sub(SubscriptionStatus.PAUSED, trial_start=T0, trial_end=trial_end), T0 + 3)
    assert after["trial_end"] == T0 + 3
    ended_trial = transitions.resume_period(_sub(SubscriptionStatus.PAUSED, trial_end=T0 + 1), T0 + 3)
    assert ended_trial["trial_end"] == T0 + 1  # a trial already over is left as it was
    with pytest.raises(StateError, match="only a paused subscription can be resumed"):
        transitions.resume_period(_sub(), T0)


def _new(trial_days: int) -> dict[str, Any]:
    recurrence = items.Recurrence(currency="usd", interval="month", interval_count=1, trial_period_days=None)
    return transitions.new_subscription(
        livemode=False, customer_id="cus_1", stored_items=[], recurrence=recurrence, payment_method=None,
        trial_days=trial_days, clock_id=None, now=T0 + 0.7, metadata={},
    )  # fmt: skip


def test_a_new_subscription_with_a_trial_starts_it_and_schedules_its_end() -> None:
    sub = _new(trial_days=14)
    trial_end = T0 + 14 * 86_400
    assert sub["status"] == "trialing" and sub["trial_start"] == sub["current_period_start"] == T0
    assert sub["trial_end"] == sub["current_period_end"] == sub["billing_cycle_anchor"] == trial_end
    change = transitions.start_trial(sub)
    assert [e.type for e in change.events] == ["customer.subscription.created", "customer.subscription.trial_start"]
    assert change.due() == [(jobs.TRIAL_WILL_END, trial_end - 3 * 86_400), (jobs.TRIAL_END, trial_end)]


def test_a_new_subscription_without_a_trial_is_active_or_incomplete_by_its_first_payment() -> None:
    sub = _new(trial_days=0)
    assert sub["trial_end"] is None and sub["current_period_end"] == MONTH_END
    assert transitions.first_payment(sub, "in_1", paid=True)["status"] == "active"
    unpaid = transitions.first_payment(sub, "in_1", paid=False)
    assert unpaid["status"] == "incomplete" and unpaid["latest_invoice_id"] == "in_1"
    assert sub["latest_invoice_id"] is None  # the state before is left as it was


def _opened_renewal(unit_amount: int) -> renewals.OpenedPeriod:
    sub = _sub(
        items=[{"id": "si_1", "price_id": "price_1", "quantity": 2, "unit_amount": unit_amount, "currency": "usd"}]
    )
    call = Billing().call(livemode=False)
    return renewals.open_period(call, sub, [], MONTH_END, "subscription_cycle", MONTH_END)


def test_a_renewal_opens_its_period_and_invoice_without_a_database() -> None:
    opened = _opened_renewal(500)
    assert opened.before["current_period_start"] == T0
    assert (opened.after["current_period_start"], opened.after["current_period_end"]) == (
        MONTH_END,
        MONTH_END + 28 * 86_400,  # February 2026
    )
    assert opened.after["status"] == "active" and opened.after["latest_invoice_id"] is None
    invoice, intent = opened.opened.invoice, opened.opened.intent
    assert invoice["amount_due"] == 1000 and intent is not None and intent["amount"] == 1000
    assert [e.type for e in opened.opened.created] == ["invoice.created", "payment_intent.created"]


def test_a_paid_renewal_is_active_and_says_renewed() -> None:
    opened = _opened_renewal(500)
    assert opened.opened.intent is not None
    intent = {**opened.opened.intent, "status": "succeeded"}
    invoice = collection.mark_paid(opened.opened.invoice, intent, MONTH_END)
    collected = collection.Collection(
        invoice, intent, list(opened.opened.created), collection._outcome(invoice, intent)
    )
    plan = renewals.charged_period(opened, collected, MONTH_END, ())
    assert plan.after["status"] == "active" and plan.after["latest_invoice_id"] == invoice["id"]
    assert plan.retry_due is None
    assert [e.type for e in plan.events] == [
        "invoice.created",
        "payment_intent.created",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]


def test_a_declined_renewal_is_past_due_with_its_first_retry_set() -> None:
    opened = _opened_renewal(500)
    assert opened.opened.intent is not None
    intent = {**opened.opened.intent, "status": "requires_payment_method"}
    invoice = {**opened.opened.invoice, "attempt_count": 1}
    collected = collection.Collection(
        invoice, intent, list(opened.opened.created), collection._outcome(invoice, intent)
    )
    plan = renewals.charged_period(opened, collected, MONTH_END, ("trial_end",))
    assert plan.after["status"] == "past_due"
    assert plan.retry_due == MONTH_END + subscription_state.DUNNING_DAYS[0] * 86_400
    types = [e.type for e in plan.events]
    assert types[0] == "customer.subscription.trial_end" and "customer.subscription.renewed" not in types
    assert types[-1] == "customer.subscription.updated"
    failed = next(e for e in plan.events if e.type == "invoice.payment_failed")
    assert failed.object["next_payment_attempt"] == plan.retry_due

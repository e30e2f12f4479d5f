"""A subscription's stored state and what every change of it shares: rendering, loading and
saving, its events, and deriving its time-driven jobs from its state.

Events of one transition carry the subscription as it is after the whole transition; only
`customer.subscription.updated` carries `previous_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import invoices, items, jobs, periods
from paywire.billing.collection import Collection
from paywire.billing.runtime import Call
from paywire.billing.statuses import SubscriptionStatus
from paywire.db.engine import Tx
from paywire.db.schema import invoices as invoices_table
from paywire.db.schema import subscriptions
from paywire.errors import NotFound
from paywire.events.log import NewEvent, append

DAY = periods.DAY
TRIAL_NOTICE = 3 * DAY
DUNNING_DAYS = (1, 3, 5)  # retries after the first failure; a failed last retry cancels
INCOMPLETE_EXPIRES_AFTER = 23 * 3600
LIFECYCLE_JOBS = (jobs.TRIAL_WILL_END, jobs.TRIAL_END, jobs.RENEWAL, jobs.CANCEL, jobs.INCOMPLETE_EXPIRE)
ENDED = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})
# Still billed: these can change plan or cancel; BILLED renews at its period's end.
LIVE = frozenset({SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
BILLED = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
PAUSABLE = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})
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


def event(kind: str, sub: dict[str, Any]) -> NewEvent:
    return NewEvent(PREFIX + kind, render(sub))


def updated_events(
    before: dict[str, Any], after: dict[str, Any], rendered_after: dict[str, Any] | None = None
) -> list[NewEvent]:
    """`.updated` with `previous_attributes`, if any API field changed. `rendered_after`: `after`
    already rendered (a renewal's `renewed` event carries the same object: rendered once)."""
    old, new = render(before), rendered_after if rendered_after is not None else render(after)
    changed = objects.previous(old, new)
    return [NewEvent(PREFIX + "updated", new, changed)] if changed else []


def period_after(sub: dict[str, Any], start: int) -> int:
    """The end of the period that starts at boundary `start` (dates from the anchor)."""
    return periods.next_boundary(sub["billing_cycle_anchor"], sub["interval"], sub["interval_count"], start)


async def emit(tx: Tx, call: Call, events: list[NewEvent], now: float) -> None:
    await append(tx, events, livemode=call.livemode, now=now, request=call.request)


async def load(tx: Tx, subscription_id: str, livemode: bool | None = None) -> dict[str, Any]:
    query = sa.select(subscriptions).where(subscriptions.c.id == subscription_id)
    if livemode is not None:
        query = query.where(subscriptions.c.livemode == livemode)
    row = (await tx.conn.execute(query.with_for_update())).mappings().first()
    if row is None:
        raise NotFound(f"no such subscription: {subscription_id!r}", param="id")
    return dict(row)


async def insert(tx: Tx, change: Transition, now: float) -> None:
    """Store a new subscription that a transition made, and its time-driven jobs."""
    await tx.conn.execute(subscriptions.insert().values(**change.after))
    await reschedule(tx, change.after, now)


async def save(tx: Tx, before: dict[str, Any], after: dict[str, Any], now: float) -> None:
    if changed := saved(before, after, now):
        await tx.conn.execute(subscriptions.update().where(subscriptions.c.id == before["id"]).values(**changed))


async def reschedule(tx: Tx, sub: dict[str, Any], now: float) -> None:
    """Derive the subscription's next time-driven transitions from its state."""
    await jobs.cancel(tx, sub["id"], LIFECYCLE_JOBS, now=now)
    for kind, due in lifecycle_jobs(sub):
        await jobs.schedule(
            tx, kind=kind, object_id=sub["id"], due=due, livemode=sub["livemode"],
            clock_id=sub["test_clock_id"], now=now,
        )  # fmt: skip


def lifecycle_jobs(sub: dict[str, Any]) -> list[tuple[str, int]]:
    """The (kind, due) of the time-driven transitions the subscription's state asks for."""
    status = sub["status"]
    if status == SubscriptionStatus.TRIALING:
        # 3 days before the trial ends, or at once for a shorter trial (due at its start).
        return [
            (jobs.TRIAL_WILL_END, max(sub["trial_start"], sub["trial_end"] - TRIAL_NOTICE)),
            (jobs.CANCEL if sub["cancel_at_period_end"] else jobs.TRIAL_END, sub["trial_end"]),
        ]
    if status in BILLED:
        return [(jobs.CANCEL if sub["cancel_at_period_end"] else jobs.RENEWAL, sub["current_period_end"])]
    if status == SubscriptionStatus.INCOMPLETE:
        return [(jobs.INCOMPLETE_EXPIRE, sub["created"] + INCOMPLETE_EXPIRES_AFTER)]
    return []


async def schedule_retry(tx: Tx, sub: dict[str, Any], collected: Collection, attempt: int, first: int) -> None:
    """Schedule dunning retry `attempt`; the failure events then show `next_payment_attempt`."""
    invoice = collected.invoice
    due = note_retry(collected, attempt, first)
    await jobs.schedule(
        tx, kind=jobs.DUNNING_RETRY, object_id=sub["id"], due=due, livemode=sub["livemode"],
        clock_id=sub["test_clock_id"], now=first, payload=retry_payload(invoice, attempt, first),
    )  # fmt: skip
    await tx.conn.execute(
        invoices_table.update().where(invoices_table.c.id == invoice["id"]).values(next_payment_attempt=due)
    )


def note_retry(collected: Collection, attempt: int, first: int) -> int:
    """Dunning retry `attempt`'s time, set on the invoice and its failure event (nothing written)."""
    due = first + DUNNING_DAYS[attempt - 1] * DAY
    invoice = collected.invoice
    invoice["next_payment_attempt"] = due
    collected.outcome = [
        NewEvent(e.type, invoices.render(invoice)) if e.type == "invoice.payment_failed" else e
        for e in collected.outcome
    ]
    return due


def retry_payload(invoice: dict[str, Any], attempt: int, first: int) -> dict[str, Any]:
    return {"invoice_id": invoice["id"], "attempt": attempt, "first_failed_at": first}


def saved(before: dict[str, Any], after: dict[str, Any], now: float) -> dict[str, Any]:
    """The columns `save` writes (and sets `after["updated"]`): the changed ones, if any."""
    changed = {k: v for k, v in after.items() if before.get(k) != v and k not in ("seq", "id")}
    if changed:
        changed["updated"] = int(now)
        after["updated"] = int(now)
    return changed


def lines_for_period(sub: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
    return [items.period_line(item, start, end) for item in sub["items"]]


def new_invoice(
    sub: dict[str, Any], reason: str, lines: list[dict[str, Any]], period: tuple[int, int], now: float
) -> dict[str, Any]:
    return invoices.build(
        livemode=sub["livemode"], customer_id=sub["customer_id"], subscription_id=sub["id"],
        currency=sub["currency"], lines=lines, billing_reason=reason, period=period,
        clock_id=sub["test_clock_id"], now=now,
    )  # fmt: skip


def ended(
    before: dict[str, Any],
    now: float,
    *,
    canceled_at: int | None,
    status: SubscriptionStatus = SubscriptionStatus.CANCELED,
) -> dict[str, Any]:
    """The subscription as it is once ended at `now`."""
    return {
        **before,
        "status": status,
        "canceled_at": canceled_at if canceled_at is not None else before["canceled_at"],
        "ended_at": int(now),
        "cancel_at_period_end": False,
        "cancel_at": None,
    }


async def end_subscription(
    tx: Tx,
    before: dict[str, Any],
    now: float,
    *,
    canceled_at: int | None,
    status: SubscriptionStatus = SubscriptionStatus.CANCELED,
) -> dict[str, Any]:
    after = ended(before, now, canceled_at=canceled_at, status=status)
    await save(tx, before, after, now)
    await jobs.cancel(tx, before["id"], None, now=now)
    return after


@dataclass(frozen=True)
class Transition:
    """What a transition decided, before any SQL (`billing/transitions.py` decides, `apply`
    stores): the state after, its events, and whether it stops every pending job (else its
    lifecycle jobs become `lifecycle_jobs(after)`)."""

    after: dict[str, Any]
    events: list[NewEvent]
    stops_jobs: bool = False

    def due(self) -> list[tuple[str, int]]:
        """The (kind, due) of the time-driven jobs left after it."""
        return [] if self.stops_jobs else lifecycle_jobs(self.after)


async def apply(tx: Tx, call: Call, before: dict[str, Any], change: Transition, now: float) -> dict[str, Any]:
    """Store a transition: the row, its jobs, its events; answer the subscription as rendered."""
    await save(tx, before, change.after, now)
    if change.stops_jobs:
        await jobs.cancel(tx, before["id"], None, now=now)
    else:
        await reschedule(tx, change.after, now)
    await emit(tx, call, change.events, now)
    return render(change.after)

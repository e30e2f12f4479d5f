"""Renewals due at one instant run in batches (`scheduler.run_batch`): each subscription's events
are exactly those of a renewal run alone, in the same order, and a job that fails in a batch is
run alone and recorded without holding the others back."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import jobs, scheduler
from paywire.billing.scheduler import run_due
from paywire.db.schema import billing_jobs, events, payment_intents

from .test_billing_scheduler import ManualClock, _monthly_subscriptions
from .test_billing_timelines import DAY, T0

RENEWAL_EVENTS = [
    "invoice.created",
    "payment_intent.created",
    "payment_intent.succeeded",
    "invoice.paid",
    "customer.subscription.renewed",
    "customer.subscription.updated",
]


async def test_a_batch_renews_each_subscription_with_its_own_events_in_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "BATCH", 7)  # several batches, the last one short
    clock = ManualClock(T0)
    app = PaywireApp(database_url, clock=clock, run_worker=False)
    async with app.running():
        ids = await _monthly_subscriptions(app, 24)
        clock.t = T0 + 32 * DAY
        assert await run_due(app.db, app.billing) == 24
        async with app.db.read() as conn:
            renewal_time = events.c.created >= T0 + 31 * DAY
            columns = (events.c.seq, events.c.type, events.c.object_id, events.c.data)
            rows = (await conn.execute(sa.select(*columns).where(renewal_time).order_by(events.c.seq))).all()
            statuses: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.select(billing_jobs.c.status, sa.func.count()).group_by(billing_jobs.c.status)
                    )
                ).all()
            )
            processing = await conn.scalar(sa.select(sa.func.count()).where(payment_intents.c.status == "processing"))
    by_sub: dict[str, list[tuple[int, str]]] = {}
    sub_of_invoice: dict[str, str] = {}
    for seq, kind, object_id, data in rows:
        obj = data["object"]
        if kind.startswith("customer.subscription."):
            sub = object_id
        elif kind.startswith("invoice."):
            sub = sub_of_invoice.setdefault(obj["id"], obj["subscription_id"])
        else:  # a payment intent: its invoice's subscription
            sub = sub_of_invoice[obj["invoice_id"]]
        by_sub.setdefault(sub, []).append((seq, kind))
    assert sorted(by_sub) == sorted(ids)
    for sub, evs in by_sub.items():
        assert [kind for _, kind in evs] == RENEWAL_EVENTS, sub
        seqs = [seq for seq, _ in evs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), sub  # one renewal's events together
    assert statuses == {"done": 24, "pending": 24}  # the next renewals, not yet due
    assert processing == 0


async def test_a_job_failing_in_a_batch_runs_alone_and_the_others_renew(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(T0)
    app = PaywireApp(database_url, clock=clock, run_worker=False)
    async with app.running():
        ids = await _monthly_subscriptions(app, 10)
        bad = ids[4]
        renew = scheduler.HANDLERS[jobs.RENEWAL]

        async def failing(tx: Any, call: Any, job: Any, now: float) -> None:
            if job["object_id"] == bad:
                raise RuntimeError("boom")
            await renew(tx, call, job, now)

        monkeypatch.setitem(scheduler.HANDLERS, jobs.RENEWAL, failing)
        clock.t = T0 + 32 * DAY
        assert await run_due(app.db, app.billing) == 10
        async with app.db.read() as conn:
            renewed = (
                (
                    await conn.execute(
                        sa.select(events.c.object_id).where(events.c.type == "customer.subscription.renewed")
                    )
                )
                .scalars()
                .all()
            )
            failed = (
                (await conn.execute(sa.select(billing_jobs).where(billing_jobs.c.object_id == bad))).mappings().one()
            )
    assert sorted(renewed) == sorted(i for i in ids if i != bad)
    # Run alone, its failure recorded as `run_one` records it: retried later with back-off.
    assert failed["status"] == "pending" and failed["attempts"] == 1 and "boom" in failed["last_error"]
    assert failed["due"] > T0 + 32 * DAY

"""Renewals due at one instant run in batches (`scheduler.run_batch`): each subscription's events
are exactly those of a renewal run alone, in the same order, and a job that fails in a batch is
run alone and recorded without holding the others back."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import charge_flows, charging, jobs, renewals, scheduler
from paywire.billing import invoices as invoices_module
from paywire.billing.scheduler import run_due
from paywire.db.schema import billing_jobs, events, invoices, payment_intents, subscriptions

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
        renew = charge_flows.HANDLERS[jobs.RENEWAL]

        async def failing(tx: Any, call: Any, job: Any, now: float) -> None:
            if job["object_id"] == bad:
                raise RuntimeError("boom")
            await renew(tx, call, job, now)

        monkeypatch.setitem(charge_flows.HANDLERS, jobs.RENEWAL, failing)
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


async def test_a_batch_plans_each_renewal_once_and_again_if_its_subscription_changed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prepare` opens each renewal's period and `finish` charges that one; a subscription that
    changed between the two transactions is planned again, from what it is now."""
    clock = ManualClock(T0)
    app = PaywireApp(database_url, clock=clock, run_worker=False)
    async with app.running():
        ids = await _monthly_subscriptions(app, 5)
        changed = ids[2]
        opened: list[str] = []
        open_period = renewals.open_period

        def counted(*args: Any, **kwargs: Any) -> renewals.OpenedPeriod:
            period = open_period(*args, **kwargs)
            opened.append(period.before["id"])
            return period

        settle_many = charging.settle_many

        async def meanwhile(db: Any, billing: Any, intents: Any, kept: Any = None) -> None:
            async with db.transaction() as tx:
                gold = subscriptions.update().where(subscriptions.c.id == changed).values(metadata={"plan": "gold"})
                await tx.conn.execute(gold)
            await settle_many(db, billing, intents, kept)

        monkeypatch.setattr(renewals, "open_period", counted)
        monkeypatch.setattr(charging, "settle_many", meanwhile)
        clock.t = T0 + 32 * DAY
        assert await run_due(app.db, app.billing) == 5
        async with app.db.read() as conn:
            query = sa.select(events.c.object_id, events.c.data).where(events.c.type == "customer.subscription.renewed")
            renewed = {object_id: data["object"] for object_id, data in (await conn.execute(query)).all()}
    assert sorted(opened) == sorted([*ids, changed])
    assert sorted(renewed) == sorted(ids)
    assert renewed[changed]["metadata"] == {"plan": "gold"}
    assert all(renewed[i]["metadata"] == {} for i in ids if i != changed)


_ID = re.compile(r"\b(?:(?:in|pi|sub|si|cus|il|ii|evt)_[0-9A-Za-z]{22}|ch_test_[0-9a-f]{24})\b")


def _normalised(value: Any, names: dict[str, str]) -> Any:
    """`value` with every object id replaced by its order of first appearance (`#1`, `#2`…)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return json.loads(_ID.sub(lambda m: names.setdefault(m.group(0), f"#{len(names) + 1}"), text))


async def _written(app: PaywireApp, sub_ids: list[str]) -> list[Any]:
    """Per subscription: its renewal's events (types and data), its invoices, payment intents,
    jobs and its own row, ids normalised, so two renewals can be compared."""
    out = []
    async with app.db.read() as conn:
        for sub_id in sub_ids:
            names: dict[str, str] = {}
            sub = dict(
                (await conn.execute(sa.select(subscriptions).where(subscriptions.c.id == sub_id))).mappings().one()
            )
            found = (
                await conn.execute(
                    sa.select(invoices).where(invoices.c.subscription_id == sub_id).order_by(invoices.c.seq)
                )
            ).mappings()
            bills = [dict(row) for row in found]
            bill_ids = [bill["id"] for bill in bills]
            query = sa.select(payment_intents).where(payment_intents.c.invoice_id.in_(bill_ids))
            intents = [dict(row) for row in (await conn.execute(query.order_by(payment_intents.c.seq))).mappings()]
            query = sa.select(billing_jobs).where(billing_jobs.c.object_id == sub_id).order_by(billing_jobs.c.seq)
            schedule = [dict(row) for row in (await conn.execute(query)).mappings()]
            mine = sa.or_(
                events.c.object_id.in_([sub_id, *bill_ids, *(i["id"] for i in intents)]),
            )
            query = sa.select(events.c.type, events.c.data, events.c.created).where(mine).order_by(events.c.seq)
            stream = [dict(row) for row in (await conn.execute(query)).mappings()]
            for rows in (bills, intents, schedule, [sub]):
                for row in rows:
                    row.pop("seq", None)
            out.append(_normalised({"sub": [sub], "invoices": bills, "intents": intents, "jobs": schedule,
                                    "events": stream}, names))  # fmt: skip
    return out


async def test_a_set_based_batch_writes_what_one_renewal_at_a_time_writes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals that pay, that fail (past due, a dunning retry) and that take a pending credit
    line: the batch's rows and events equal those of the same renewals run one at a time."""
    clock = ManualClock(T0)
    app = PaywireApp(database_url, clock=clock, run_worker=False)
    async with app.running():
        ids = await _monthly_subscriptions(app, 6)
        batched, alone = ids[:3], ids[3:]
        async with app.db.transaction() as tx:
            for group in (batched, alone):  # one of each kind in each group
                declined = subscriptions.c.id == group[1]
                await tx.conn.execute(
                    subscriptions.update().where(declined).values(default_payment_method="pm_card_chargeCustomerFail")
                )
                line = {"id": "il_" + group[2][4:], "description": "Credit", "amount": -150, "proration": True,
                        "period": {"start": T0, "end": T0 + 31 * DAY}}  # fmt: skip
                await invoices_module.add_pending_lines(tx, group[2], [line], livemode=False, now=T0)
            held = billing_jobs.c.object_id.in_(alone)
            await tx.conn.execute(billing_jobs.update().where(held).values(status="canceled"))
        clock.t = T0 + 32 * DAY
        assert await run_due(app.db, app.billing) == 3  # set-based
        async with app.db.transaction() as tx:
            await tx.conn.execute(billing_jobs.update().where(held).values(status="pending"))
        renew = charge_flows.HANDLERS[jobs.RENEWAL]

        async def one_at_a_time(tx: Any, call: Any, job: Any, now: float) -> None:
            await renew(tx, call, job, now)

        monkeypatch.setitem(charge_flows.HANDLERS, jobs.RENEWAL, one_at_a_time)  # not `on_renewal`: the old path
        assert await run_due(app.db, app.billing) == 3
        first, second = await _written(app, batched), await _written(app, alone)
    for one, other in zip(first, second, strict=True):
        for table, rows in one.items():
            for a, b in zip(rows, other[table], strict=True):
                assert a == b, (table, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})
    assert first[1]["sub"][0]["status"] == "past_due"
    assert [j["kind"] for j in first[1]["jobs"]] == ["renewal", "dunning_retry", "renewal"]
    assert first[2]["invoices"][-1]["total"] == 400 - 150


async def test_a_batch_of_renewals_sends_a_few_statements_however_many_it_renews(database_url: str) -> None:
    """One statement per table per batch: 10 and 40 renewals in one batch send as many."""
    clock = ManualClock(T0)
    app = PaywireApp(database_url, clock=clock, run_worker=False)
    counts = []
    async with app.running():
        ids = await _monthly_subscriptions(app, 50)
        groups = (ids[:10], ids[10:])
        async with app.db.transaction() as tx:
            await tx.conn.execute(
                billing_jobs.update().where(billing_jobs.c.object_id.in_(groups[1])).values(status="canceled")
            )
        clock.t = T0 + 32 * DAY
        count = [0]

        def counted(*_: Any) -> None:
            count[0] += 1

        sa.event.listen(app.db.engine.sync_engine, "before_cursor_execute", counted)
        try:
            for group in groups:
                async with app.db.transaction() as tx:
                    held = billing_jobs.c.object_id.in_(group)
                    await tx.conn.execute(billing_jobs.update().where(held).values(status="pending"))
                count[0] = 0
                assert await run_due(app.db, app.billing) == len(group)
                counts.append(count[0])
        finally:
            sa.event.remove(app.db.engine.sync_engine, "before_cursor_execute", counted)
    assert counts[0] == counts[1], counts  # one at a time this was ~30 per renewal: 300 against 1,200
    assert counts[1] < 40, counts

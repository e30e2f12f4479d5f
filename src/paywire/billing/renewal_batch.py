"""A batch of renewals due at one instant, written set-based: one statement per table for the
whole batch instead of a sequence of single-row statements per renewal.

Each step is the one the scheduler runs a job by (billing/scheduler.py, billing/charging.py),
for many renewals at once, and computes each renewal exactly as `renewals.on_renewal` does
(`renewals.plan_period`): the same rows, the same events in the same order. What is not a plain
renewal — another kind of job, a renewal with nothing to charge, a subject with a charge in
flight, an answer that is not a final one, a subscription that changed meanwhile — is handed
back to the one-at-a-time path, which handles it as before.

- `prepare` (in the transaction that claims the jobs): reads the subscriptions and their
  pending lines in one query each, opens every renewal's period (`renewals.open_period`: its
  invoice and payment intent, up to the charge) and records every charge as a `processing`
  payment intent with the continuation `charging.prepare_charge` would have stored, in one
  insert. A crash after this commit leaves what one job at a time left: the reconciler
  finishes each intent through the ordinary `charging.finish`.
- `finish` (in the transaction that records the provider's answers): locks the intents and the
  subscriptions in one query each, charges each period `prepare` opened with its answer
  (`renewals.charge_period`; planned again from the start only if its subscription or pending
  lines changed meanwhile, or another process prepared it), and writes the invoices, the
  intents, the subscriptions, the jobs, the events and their deliveries in one statement per
  table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from paywire.billing import charge_step, invoices, jobs, renewals
from paywire.billing.charge_flows import HANDLERS
from paywire.billing.runtime import Billing, Call
from paywire.billing.statuses import PaymentIntentStatus
from paywire.billing.subscription_state import LIFECYCLE_JOBS, lifecycle_jobs, retry_payload, saved
from paywire.db import dialect
from paywire.db.dialect import insert_plain, update_plain
from paywire.db.engine import Tx
from paywire.db.schema import customers, payment_intents, subscriptions
from paywire.db.schema import invoices as invoices_table
from paywire.events.log import Batch, append_many
from paywire.providers.base import ChargeResult

REASON = "subscription_cycle"


@dataclass(frozen=True)
class Opened:
    """A renewal's period as its first pass opened it, with the pending lines it read: `finish`
    charges it with the provider's answer instead of planning the period again, while the
    subscription and its pending lines are still the ones it was opened from."""

    period: renewals.OpenedPeriod
    pending: list[tuple[int, dict[str, Any]]]
    now: float


@dataclass
class Prepared:
    intents: list[dict[str, Any]] = field(default_factory=list)  # recorded as processing
    done: list[int] = field(default_factory=list)  # seqs of the jobs run here (charged, or nothing to do)
    rest: list[dict[str, Any]] = field(default_factory=list)  # jobs for the one-at-a-time path
    opened: dict[str, Opened] = field(default_factory=dict)  # by payment intent id, for `finish`


def _applies() -> bool:
    """This path stands for `renewals.on_renewal`: where the scheduler runs renewals with another
    handler (a test's), every renewal goes through that handler, one at a time."""
    return HANDLERS.get(jobs.RENEWAL) is renewals.on_renewal


async def _subscriptions(tx: Tx, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The subscriptions, locked, in id order (a lock order every batch shares)."""
    query = sa.select(subscriptions).where(subscriptions.c.id.in_(ids)).order_by(subscriptions.c.id)
    return {row["id"]: dict(row) for row in (await tx.conn.execute(query.with_for_update())).mappings()}


async def prepare(
    tx: Tx, call_for: Callable[[dict[str, Any]], Call], batch: list[dict[str, Any]], now: float
) -> Prepared:
    """The renewals' first pass: charges recorded as `processing` (the caller marks `done`
    finished and commits). `call_for(job)` is the job's call, as the scheduler makes it."""
    out = Prepared()
    if not _applies():
        out.rest = batch
        return out
    renewal = [job for job in batch if job["kind"] == jobs.RENEWAL]
    out.rest = [job for job in batch if job["kind"] != jobs.RENEWAL]
    if not renewal:
        return out
    ids = [str(job["object_id"]) for job in renewal]
    subs = await _subscriptions(tx, ids)
    pending = await invoices.read_pending_lines(tx, ids)
    needs: list[tuple[dict[str, Any], Call, charge_step.ChargeNeeded, Opened]] = []
    for job in renewal:
        sub = subs.get(job["object_id"])
        if sub is None:
            out.rest.append(job)  # the one-at-a-time path says why
            continue
        if not renewals.renewal_applies(sub, job):
            out.done.append(job["seq"])  # the handler would do nothing
            continue
        call = call_for(job)
        read = pending.get(sub["id"], [])
        period = renewals.open_period(call, sub, [line for _, line in read], sub["current_period_end"], REASON, now)
        try:
            await renewals.charge_period(call, period, now, ())
        except charge_step.ChargeNeeded as charge:
            needs.append((job, call, charge, Opened(period, read, now)))
            continue
        out.rest.append(job)  # nothing to charge: its pass writes everything, one at a time
    if not needs:
        return out
    subjects = sorted(str(job["object_id"]) for job, _, _, _ in needs)
    await dialect.lock_names(tx.conn, [charge_step.subject_lock_name(s) for s in subjects])  # `_subject_lock` each
    busy = set(
        (
            await tx.conn.execute(
                sa.select(payment_intents.c.subject_id).where(
                    payment_intents.c.subject_id.in_(subjects),
                    payment_intents.c.status == PaymentIntentStatus.PROCESSING,
                )
            )
        ).scalars()
    )
    customer_ids = {charge.intent["customer_id"] for _, _, charge, _ in needs if charge.intent["customer_id"]}
    refs = dict(
        (
            await tx.conn.execute(
                sa.select(customers.c.id, customers.c.provider_customer_ref).where(customers.c.id.in_(customer_ids))
            )
        ).all()
    )
    for job, call, need, opened in needs:
        subject = str(job["object_id"])
        if subject in busy:
            out.rest.append(job)  # `prepare_charge` answers payment_in_progress, one at a time
            continue
        args = {"job": job, "now": now}
        ref = refs.get(need.intent["customer_id"]) if need.intent["customer_id"] else None
        out.intents.append(charge_step.processing_row(call, "job", args, need, subject, new=True, customer_ref=ref))
        out.opened[need.intent["id"]] = opened
        out.done.append(job["seq"])
    await insert_plain(tx.conn, payment_intents, out.intents)
    return out


def _is_renewal(intent: Any, result: ChargeResult) -> bool:
    cont = intent["continuation"] or {}
    job = (cont.get("args") or {}).get("job") or {}
    plain = cont.get("flow") == "job" and job.get("kind") == jobs.RENEWAL and cont.get("new")
    return bool(plain) and not result.pending and result.next_action is None


async def finish(
    tx: Tx,
    billing: Billing,
    answers: list[tuple[dict[str, Any], ChargeResult]],
    opened: Mapping[str, Opened],
) -> list[tuple[dict[str, Any], ChargeResult]]:
    """Record the provider's answers for a batch's renewals; returns the answers left for
    `charging.finish_in` one at a time (not a plain renewal, or no longer applying). `opened`:
    the periods `prepare` opened, by intent id (empty when another process prepared them)."""
    if not _applies():
        return answers
    ids = [intent["id"] for intent, _ in answers]
    query = sa.select(payment_intents).where(payment_intents.c.id.in_(ids)).order_by(payment_intents.c.id)
    rows = {row["id"]: dict(row) for row in (await tx.conn.execute(query.with_for_update())).mappings()}
    rest: list[tuple[dict[str, Any], ChargeResult]] = []
    mine: list[tuple[dict[str, Any], ChargeResult, str | None]] = []
    for intent, result in answers:
        row = rows.get(intent["id"])
        if row is None or row["status"] != PaymentIntentStatus.PROCESSING:
            continue  # settled by someone else: nothing to do (as `finish_in`)
        if _is_renewal(row, result):
            mine.append((row, result, intent["continuation"].get("customer_ref")))
        else:
            rest.append((intent, result))
    if not mine:
        return rest
    refs = [{"b_id": row["customer_id"], "ref": ref} for row, _, ref in mine if ref and row["customer_id"]]
    if refs:
        await tx.conn.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("b_id"), customers.c.provider_customer_ref.is_(None))
            .values(provider_customer_ref=sa.bindparam("ref")),
            refs,
        )
    sub_ids = [str(row["continuation"]["args"]["job"]["object_id"]) for row, _, _ in mine]
    subs = await _subscriptions(tx, sub_ids)
    pending = await invoices.read_pending_lines(tx, sub_ids)
    plans: list[Planned] = []
    for (row, result, _), sub_id in zip(mine, sub_ids, strict=True):
        cont = row["continuation"]
        sub, now = subs.get(sub_id), float(cont["now"])
        if sub is None or not renewals.renewal_applies(sub, cont["args"]["job"]):
            rest.append((row, result))  # `finish_in` records the payment alone
            continue
        call = charge_step.finishing_call(billing, row, result)
        read = pending.get(sub_id, [])
        kept = opened.get(row["id"])
        if kept is not None and kept.period.before == sub and kept.pending == read and kept.now == now:
            plan = await renewals.charge_period(call, kept.period, now, ())
        else:  # the subscription or its pending lines changed meanwhile, or another process prepared it
            lines = [line for _, line in read]
            plan = await renewals.plan_period(call, sub, lines, sub["current_period_end"], REASON, now, ())
        assert call.step is not None and call.step.charged is not None and call.step.charged.taken
        plans.append(Planned(plan, call, now, row))
        await invoices.attach_lines(tx, {seq: plan.collected.invoice["id"] for seq, _ in read})
    if plans:
        await _write(tx, plans)
    return rest


@dataclass(frozen=True)
class Planned:
    """A renewal `finish` records: its plan, its call, its time and its intent's row as locked."""

    plan: renewals.PeriodPlan
    call: Call
    now: float
    stored: dict[str, Any]  # the payment intent as `prepare` recorded it (`processing`)


def _changed(stored: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of `values` whose value differs from the row's `stored` one (by type too, so
    1 never stands for 1.0 or True), the key `id` kept: what an update needs to write. Setting a
    column to its own value is not free: SQLite rewrites the entries of every index on a column
    it sets, changed or not."""
    return {
        k: v
        for k, v in values.items()
        if k == "id" or k not in stored or stored[k] != v or type(stored[k]) is not type(v)
    }


async def _update_by_columns(conn: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """`update_plain` by `id` for rows that set different columns: one statement per set."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    for columns, values in by_columns.items():
        if len(columns) > 1:  # more than the key
            await update_plain(conn, table, "id", values)


async def _write(tx: Tx, planned: list[Planned]) -> None:
    """Every plan's rows: one statement per table (two for subscriptions whose status changed,
    and as many for the intents as sets of columns their outcomes change)."""
    conn = tx.conn
    plans = [(p.plan, p.call, p.now) for p in planned]
    await insert_plain(conn, invoices_table, [plan.collected.invoice for plan, _, _ in plans])
    intents = []
    for p in planned:
        intent = p.plan.collected.intent
        assert intent is not None and p.plan.collected.invoice["total"] >= 0  # no credit to carry
        intents.append(_changed(p.stored, {k: v for k, v in intent.items() if k != "seq"}))
    await _update_by_columns(conn, payment_intents, intents)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for plan, _, now in plans:
        changed = saved(plan.before, plan.after, now)
        by_columns.setdefault(tuple(sorted(changed)), []).append({"id": plan.before["id"], **changed})
    for columns, values in by_columns.items():
        if columns:
            await update_plain(conn, subscriptions, "id", values)
    wanted: list[jobs.Due] = []
    for plan, _, now in plans:
        after = plan.after
        if plan.retry_due is not None:
            first = int(now)
            payload = retry_payload(plan.collected.invoice, 1, first)
            wanted.append(
                jobs.Due(jobs.DUNNING_RETRY, after["id"], plan.retry_due, after["livemode"], after["test_clock_id"],
                         first, payload)
            )  # fmt: skip
        for kind, due in lifecycle_jobs(after):
            wanted.append(jobs.Due(kind, after["id"], due, after["livemode"], after["test_clock_id"], now))
    # `reschedule` cancels the lifecycle jobs, then schedules; a dunning retry is no lifecycle job.
    for now in sorted({now for _, _, now in plans}):
        subs_at = [plan.after["id"] for plan, _, at in plans if at == now]
        await jobs.cancel_many(tx, subs_at, LIFECYCLE_JOBS, now=now)
    await jobs.schedule_many(tx, wanted)
    await append_many(tx, [Batch(plan.events, call.livemode, now, call.request) for plan, call, now in plans])

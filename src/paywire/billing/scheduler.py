"""The scheduler: runs due billing jobs. A `Service` of `PaywireApp` (in `serve` and `worker`).

Each job runs in one transaction that claims it, applies the transition (rows and events) and
marks it done — or, for a job that charges, records the charge as `processing` and marks the job
done, the charge finishing after the provider's answer (billing/charging.py) — so a job runs to
completion exactly once however many schedulers share the database: on PostgreSQL they claim
with `FOR UPDATE SKIP LOCKED`; on SQLite write transactions are exclusive (`BEGIN IMMEDIATE`).
A job that raises is rolled back and retried with back-off; after `MAX_ATTEMPTS` it is marked
failed and logged.

The scheduler runs wall-clock jobs only; a test clock's jobs run when the clock advances
(`test_clocks.advance`), with the clock's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from paywire.billing import charging, jobs, reconcile, renewal_batch
from paywire.billing.charge_step import Ask, is_local
from paywire.billing.runtime import Billing, Call, Step
from paywire.billing.statuses import JobStatus
from paywire.db.engine import Database, is_unavailable
from paywire.db.schema import test_clocks

log = logging.getLogger("paywire.scheduler")

MAX_ATTEMPTS = 5
BATCH = 100  # jobs claimed and run together (a renewal storm): one transaction, and one statement per table, each step


async def run_one(
    db: Database, billing: Billing, *, clock_id: str | None, until: float, object_id: str | None = None
) -> bool:
    """Claim and run the earliest due job; False when nothing is due.

    A job that charges runs under the charge step: the transaction that claims it records the
    payment intent as `processing` and marks the job done, the provider is called after that
    commit, and the charge's continuation finishes the job's transition. So a crash after the
    charge never runs the job (and charges) again: the reconciler finishes it instead.
    """
    job: Any = None
    answers: dict[str, Any] = {}
    try:
        while True:
            async with db.transaction() as tx:
                job = await jobs.claim_next(tx.conn, clock_id=clock_id, until=until, object_id=object_id)
                if job is None:
                    return False
                if clock_id is None:
                    now = billing.clock.now()
                else:  # the clock shows the job's time while it runs
                    now = float(job["due"])
                    await tx.conn.execute(
                        test_clocks.update()
                        .where(test_clocks.c.id == clock_id, test_clocks.c.frozen_time < job["due"])
                        .values(frozen_time=job["due"])
                    )
                base = billing.call(job["livemode"])
                call = replace(base, step=Step(now=now, answers=answers, local=is_local(base)))
                args = {"job": dict(job), "now": now}
                outcome = await charging.prepare_job(tx, call, args, str(job["object_id"]))
                if not isinstance(outcome, Ask):
                    await jobs.finish(tx, job["seq"], now=now)
            if isinstance(outcome, Ask):  # nothing was written: ask, then claim again
                answers[outcome.key] = await outcome.question()
                continue
            if isinstance(outcome, dict):  # a charge recorded as processing, the job done
                try:
                    await charging.settle(db, billing, outcome)
                except Exception as exc:  # the job is done either way: the reconciler settles it
                    log.warning("billing job %s: charge %s left processing (%r)", job["kind"], outcome["id"], exc)
            return True
    except Exception as exc:
        # The database going away is not the job's fault: no attempt is spent, the loop waits.
        if job is None or is_unavailable(exc):
            raise
        log.exception("billing job %s for %s failed", job["kind"], job["object_id"])
        await _record_failure(db, billing, job, clock_id, exc)
        return True


async def run_batch(db: Database, billing: Billing, *, clock_id: str | None, until: float) -> int:
    """Claim the jobs due at the earliest instant (up to `BATCH`, one per object) and run them
    together; returns how many ran, 0 when nothing is due.

    The same steps as `run_one`, each for the whole batch: one transaction claims the jobs, runs
    each one's first pass (recording its charge as `processing`) and marks them done; the
    provider is then asked for each charge with no transaction open; one transaction records
    every answer (`charging.settle_many`). Plain renewals take both transactions' steps for the
    whole batch at once, with one statement per table (`renewal_batch`); the other jobs one by
    one, as before. A crash at any point leaves what `run_one` would:
    nothing committed, or jobs done with their charges `processing` for the reconciler. A job
    that raises rolls the batch back and is then run alone (which records its failure); one
    whose provider has a question first (a new customer at Stripe) runs alone after the batch.
    """
    prepared: list[dict[str, Any]] = []
    opened: dict[str, renewal_batch.Opened] = {}
    asked: list[dict[str, Any]] = []
    running: dict[str, Any] | None = None
    try:
        async with db.transaction() as tx:
            batch = await jobs.claim_batch(tx.conn, clock_id=clock_id, until=until, limit=BATCH)
            if not batch:
                return 0
            due = batch[0]["due"]
            if clock_id is None:
                now = billing.clock.now()
            else:  # the clock shows the jobs' time while they run
                now = float(due)
                await tx.conn.execute(
                    test_clocks.update()
                    .where(test_clocks.c.id == clock_id, test_clocks.c.frozen_time < due)
                    .values(frozen_time=due)
                )

            def call_for(job: dict[str, Any]) -> Call:
                base = billing.call(job["livemode"])
                return replace(base, step=Step(now=now, local=is_local(base)))

            running = batch[0]  # a batch that raises here: its first job runs alone, then the rest again
            fast = await renewal_batch.prepare(tx, call_for, batch, now)
            prepared.extend(fast.intents)
            opened.update(fast.opened)
            done: list[int] = list(fast.done)
            for job in fast.rest:
                running = job
                call = call_for(job)
                outcome = await charging.prepare_job(tx, call, {"job": job, "now": now}, str(job["object_id"]))
                if isinstance(outcome, Ask):  # its pass wrote nothing: it runs alone below
                    asked.append(job)
                    continue
                if isinstance(outcome, dict):
                    prepared.append(outcome)
                done.append(job["seq"])
            running = None
            await jobs.finish_many(tx, done, now=now)
    except Exception as exc:
        if running is None or is_unavailable(exc):
            raise
        log.info("billing job %s for %s failed in a batch; running it alone", running["kind"], running["object_id"])
        await run_one(db, billing, clock_id=clock_id, until=until, object_id=running["object_id"])
        return 1
    if prepared:
        try:
            await charging.settle_many(db, billing, prepared, opened)
        except Exception as exc:  # the jobs are done either way: the reconciler settles them
            log.warning("billing jobs: %d charges left processing (%r)", len(prepared), exc)
    for job in asked:
        await run_one(db, billing, clock_id=clock_id, until=until, object_id=job["object_id"])
    return len(done) + len(asked)


async def _record_failure(db: Database, billing: Billing, job: Any, clock_id: str | None, exc: Exception) -> None:
    now = billing.clock.now()
    error = f"{type(exc).__name__}: {exc}"
    async with db.transaction() as tx:
        # A test clock cannot wait for a retry (its time only moves on advance): fail at once.
        if clock_id is not None or job["attempts"] + 1 >= MAX_ATTEMPTS:
            await jobs.finish(tx, job["seq"], now=now, status=JobStatus.FAILED, error=error)
        else:
            await jobs.retry_later(tx, job["seq"], due=int(now) + 30 * 2 ** job["attempts"], now=now, error=error)


async def run_due(db: Database, billing: Billing, *, object_id: str | None = None) -> int:
    """Run every wall-clock job due now (of one object, if given); returns how many ran."""
    count = 0
    if object_id is not None:
        while await run_one(db, billing, clock_id=None, until=billing.clock.now(), object_id=object_id):
            count += 1
        return count
    while ran := await run_batch(db, billing, clock_id=None, until=billing.clock.now()):
        count += ran
    return count


class Scheduler:
    def __init__(self, db: Database, billing: Billing, *, poll_interval: float = 1.0) -> None:
        self.db = db
        self.billing = billing
        self.poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._next_reconcile = 0.0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="paywire-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def tick(self) -> float:
        """Run what is due; return how long to sleep. Reads first, so an idle scheduler never
        takes SQLite's write lock. Settles charges and refunds a crash left in flight."""
        if self.billing.clock.now() >= self._next_reconcile:
            self._next_reconcile = self.billing.clock.now() + max(1.0, self.billing.charge_grace / 4)
            await reconcile.run(self.db, self.billing)
        async with self.db.read() as conn:
            due = await jobs.next_due(conn, None)
        if due is not None and due <= self.billing.clock.now():
            await run_due(self.db, self.billing)
            return 0.05  # look again soon: another process may hold a job it is running
        if due is None:
            return self.poll_interval
        return max(0.05, min(self.poll_interval, due - self.billing.clock.now()))

    async def _loop(self) -> None:
        while True:
            try:
                delay = await self.tick()
            except Exception as exc:  # the database restarting: keep going
                if isinstance(exc, (sa.exc.SQLAlchemyError, OSError)):
                    log.warning("scheduler: database unavailable (%s); retrying", type(exc).__name__)
                else:
                    log.exception("scheduler loop error")
                delay = self.poll_interval
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not `wait_for`: it may swallow a stop's cancel
                async with asyncio.timeout(delay):
                    await self._wake.wait()

"""Due work as rows: schedule, cancel and claim time-driven transitions.

A job is (kind, object, due). Scheduling the same (kind, object, due) again revives a canceled
row and leaves a done one alone, so re-deriving an object's jobs never repeats finished work.
Claiming happens inside the transaction that runs the job and marks it done: a crash rolls all
three back together, so a job runs to completion exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.billing.statuses import JobStatus
from paywire.db.engine import Tx
from paywire.db.schema import billing_jobs as table

TRIAL_WILL_END = "trial_will_end"
TRIAL_END = "trial_end"
RENEWAL = "renewal"
DUNNING_RETRY = "dunning_retry"
CANCEL = "cancel"
INCOMPLETE_EXPIRE = "incomplete_expire"
CHECKOUT_EXPIRE = "checkout_expire"
NFT_MINT = "nft_mint"


async def schedule(
    tx: Tx,
    *,
    kind: str,
    object_id: str,
    due: int,
    livemode: bool,
    clock_id: str | None,
    now: float,
    payload: dict[str, Any] | None = None,
) -> int:
    """Make sure the job exists and is pending (unless it already ran); returns its seq."""
    key = sa.and_(table.c.kind == kind, table.c.object_id == object_id, table.c.due == due)
    row = (await tx.conn.execute(sa.select(table.c.seq, table.c.status).where(key))).first()
    if row is None:
        result = await tx.conn.execute(
            table.insert().values(
                livemode=livemode,
                kind=kind,
                object_id=object_id,
                due=due,
                payload=payload or {},
                test_clock_id=clock_id,
                status=JobStatus.PENDING,
                attempts=0,
                created=int(now),
                updated=int(now),
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]
    if row.status == JobStatus.CANCELED:
        await tx.conn.execute(
            table.update().where(table.c.seq == row.seq).values(status=JobStatus.PENDING, updated=int(now))
        )
    return int(row.seq)


async def cancel(tx: Tx, object_id: str, kinds: tuple[str, ...] | None, *, now: float) -> None:
    """Cancel the object's pending jobs (of `kinds`, or all).

    A job a scheduler is running right now is skipped, not waited for: that scheduler holds the
    job's lock and waits for the object's, which this caller holds (waiting would deadlock).
    Every handler re-checks the object's state once it has the lock, so the skipped job finds
    it has nothing left to do.
    """
    where = sa.and_(table.c.object_id == object_id, table.c.status == JobStatus.PENDING)
    if kinds is not None:
        where = sa.and_(where, table.c.kind.in_(kinds))
    free = sa.select(table.c.seq).where(where).with_for_update(skip_locked=True)  # (SQLite: no lock to skip)
    where = table.c.seq.in_(free.scalar_subquery())
    await tx.conn.execute(table.update().where(where).values(status=JobStatus.CANCELED, updated=int(now)))


async def cancel_many(tx: Tx, object_ids: list[str], kinds: tuple[str, ...], *, now: float) -> None:
    """`cancel` for many objects in one statement (a batch of renewals)."""
    if not object_ids:
        return
    where = sa.and_(table.c.object_id.in_(object_ids), table.c.status == JobStatus.PENDING, table.c.kind.in_(kinds))
    free = sa.select(table.c.seq).where(where).with_for_update(skip_locked=True)  # skip a job being run, as `cancel`
    where = table.c.seq.in_(free.scalar_subquery())
    await tx.conn.execute(table.update().where(where).values(status=JobStatus.CANCELED, updated=int(now)))


@dataclass(frozen=True)
class Due:
    """One job for `schedule_many`: `schedule`'s arguments."""

    kind: str
    object_id: str
    due: int
    livemode: bool
    clock_id: str | None
    now: float
    payload: dict[str, Any] | None = None


async def schedule_many(tx: Tx, wanted: list[Due]) -> None:
    """`schedule` for many jobs: one read of those that exist, one insert of the new ones (in
    the given order, so their `seq` follows it), one update reviving the canceled ones."""
    if not wanted:
        return
    found = (
        await tx.conn.execute(
            sa.select(table.c.seq, table.c.status, table.c.kind, table.c.object_id, table.c.due).where(
                table.c.object_id.in_({w.object_id for w in wanted}), table.c.kind.in_({w.kind for w in wanted})
            )
        )
    ).all()
    existing = {(r.kind, r.object_id, int(r.due)): r for r in found}
    new: list[dict[str, Any]] = []
    revive: dict[int, list[int]] = {}
    for w in wanted:
        row = existing.get((w.kind, w.object_id, w.due))
        if row is None:
            at = int(w.now)
            fields = {"livemode": w.livemode, "kind": w.kind, "object_id": w.object_id, "due": w.due}
            new.append({**fields, "payload": w.payload or {}, "test_clock_id": w.clock_id, "status": JobStatus.PENDING})
            new[-1].update(attempts=0, created=at, updated=at)
        elif row.status == JobStatus.CANCELED:
            revive.setdefault(int(w.now), []).append(int(row.seq))
    if new:
        await tx.conn.execute(table.insert(), new)
    for updated, seqs in revive.items():
        await tx.conn.execute(
            table.update().where(table.c.seq.in_(seqs)).values(status=JobStatus.PENDING, updated=updated)
        )


def _claim_order() -> tuple[Any, ...]:
    """`(due, seq)`, led by the clock column every claimed row shares: PostgreSQL does not take
    `test_clock_id IS NULL` as fixing the column for the order, so without it the claim of a
    wall-clock job read and sorted every pending one instead of following the index (0014)."""
    return (table.c.test_clock_id, table.c.due, table.c.seq)


def _locked(query: sa.Select[Any], clock_id: str | None) -> sa.Select[Any]:
    """Wall-clock jobs: `FOR UPDATE SKIP LOCKED`, so concurrent workers take different jobs; a
    skipped one is polled again. A test clock's jobs: `FOR UPDATE`, waiting. One owner runs a
    clock's advance and ends it on the first empty claim, so a job still locked by the owner it
    took over from (a killed process whose transaction PostgreSQL has not yet rolled back) must be
    waited for, not skipped, or the clock is shown past a job that never ran.
    (SQLite renders neither: its one writer needs none.)"""
    return query.with_for_update(skip_locked=clock_id is None)


async def claim_next(
    conn: AsyncConnection, *, clock_id: str | None, until: float, object_id: str | None = None
) -> sa.RowMapping | None:
    """The earliest pending job due by `until` on this clock (None: the wall clock), locked.

    Locked as `_locked` says: on PostgreSQL a wall-clock job being run is invisible to the
    other workers. SQLite: the write transaction is already exclusive.
    """
    clock = table.c.test_clock_id.is_(None) if clock_id is None else table.c.test_clock_id == clock_id
    query = (
        sa.select(table)
        .where(table.c.status == JobStatus.PENDING, clock, table.c.due <= int(until))
        .order_by(*_claim_order())
        .limit(1)
    )
    if object_id is not None:
        query = query.where(table.c.object_id == object_id)
    query = _locked(query, clock_id)
    return (await conn.execute(query)).mappings().first()


async def claim_batch(conn: AsyncConnection, *, clock_id: str | None, until: float, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the earliest pending jobs due by `until` on this clock, locked, in
    `(due, seq)` order, cut at the first that is due later than the first one or whose object
    is already in the batch: all run at one instant, one job per object, in the order
    `claim_next` would have taken them."""
    clock = table.c.test_clock_id.is_(None) if clock_id is None else table.c.test_clock_id == clock_id
    query = (
        sa.select(table)
        .where(table.c.status == JobStatus.PENDING, clock, table.c.due <= int(until))
        .order_by(*_claim_order())
        .limit(limit)
    )
    query = _locked(query, clock_id)
    batch: list[dict[str, Any]] = []
    objects: set[str] = set()
    for row in (await conn.execute(query)).mappings():
        if batch and (row["due"] != batch[0]["due"] or row["object_id"] in objects):
            break  # (the rows after it stay pending; their locks end with this transaction)
        objects.add(row["object_id"])
        batch.append(dict(row))
    return batch


async def finish_many(tx: Tx, seqs: list[int], *, now: float) -> None:
    """Mark the jobs of a batch done (one statement)."""
    if seqs:
        values = {"status": JobStatus.DONE, "updated": int(now), "attempts": table.c.attempts + 1}
        await tx.conn.execute(table.update().where(table.c.seq.in_(seqs)).values(**values))


async def finish(tx: Tx, seq: int, *, now: float, status: JobStatus = JobStatus.DONE, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "updated": int(now), "attempts": table.c.attempts + 1}
    if error is not None:
        values["last_error"] = error[:2000]
    await tx.conn.execute(table.update().where(table.c.seq == seq).values(**values))


async def retry_later(tx: Tx, seq: int, *, due: int, now: float, error: str) -> None:
    await tx.conn.execute(
        table.update()
        .where(table.c.seq == seq)
        .values(due=due, attempts=table.c.attempts + 1, last_error=error[:2000], updated=int(now))
    )


async def next_due(conn: AsyncConnection, clock_id: str | None) -> int | None:
    clock = table.c.test_clock_id.is_(None) if clock_id is None else table.c.test_clock_id == clock_id
    due = await conn.scalar(sa.select(sa.func.min(table.c.due)).where(table.c.status == JobStatus.PENDING, clock))
    return None if due is None else int(due)

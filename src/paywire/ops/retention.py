"""Retention: old events, finished webhook deliveries, attempts and idempotency keys are removed.

What goes, once older than its retention (see docs/deployment.md, "Retention"):

- webhook attempts (the request logs) created before `retention_attempts_days`, each subtracted
  from its rollup (`webhook_attempt_rollups`: the dashboard's per-hour figures, the API's attempt
  totals) in the transaction that removes it; an old hour's rollup rows go once they sum to zero.
  On PostgreSQL they are partitioned by day (`db/partitions.py`): a day's partition is dropped
  whole (its hours' rollups removed with it, in the same transaction) once all of the
  day is past retention (an attempt is kept up to a day longer), the days ahead are created
  here, and only the legacy and default partitions are deleted from in batches;
- deliveries no longer pending (succeeded, failed, canceled) last updated before
  `retention_events_days`;
- events created before `retention_events_days`, except an event with a delivery still pending
  (queued or retrying) and an event a durable EventBus consumer (`event_consumers`) has not
  reached: every event from the lowest stored position on is kept, the event *at* that position
  too, so a consumer resuming by event id (the SSE stream's `Last-Event-ID`, a remote bus) still
  finds it;
- idempotency keys created before `retention_idempotency_days`.

Rows go in batches of at most `retention_batch_size` (1,000), each its own short write
transaction (on SQLite, the one writer is held for one batch at a time) followed by a pause, so
writers wait for at most one batch; on SQLite the pruner then checkpoints its own pages, so the
automatic checkpoint does not land on an API writer's commit. A batch aims at
`retention_batch_seconds` (20 ms; its size halves when slower, down to 50 rows) and batches take
at most `retention_duty` of the time (a twentieth). Each batch
walks the table by `seq` (its primary key) from where the last one stopped, and the run stops at
the first row young enough to keep: no batch scans more than its own rows (one aggregate over
them finds where it ends; they are not returned to Python). Two workers never prune at once: each batch
takes a PostgreSQL advisory transaction lock (SQLite's write transaction is exclusive anyway)
and reads its rows under it.

With `archive_dir` set, each batch of events is first appended (and fsynced) to
`events-YYYY-MM-DD.jsonl.gz` in that folder, by the event's UTC creation day, one event per line
as the API renders it. A batch whose removal then fails is archived again by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db import dialect, partitions
from paywire.db.engine import Database
from paywire.db.schema import event_consumers, events, idempotency_keys, webhook_attempts, webhook_deliveries
from paywire.events import log as event_log
from paywire.periodic import Periodic
from paywire.settings import Settings
from paywire.webhooks import rollups

log = logging.getLogger("paywire.ops")

DAY = 86_400.0
KINDS = ("attempts", "deliveries", "events", "idempotency_keys")
MIN_BATCH = 50

Progress = Callable[[str, int], None]  # (kind, rows removed so far in this kind)


@dataclass(frozen=True)
class Policy:
    events_days: float = 30
    attempts_days: float = 30
    idempotency_days: float = 1
    batch_size: int = 1000  # rows per transaction, at most
    # Pacing: a batch aims to hold the write lock for `batch_seconds` (its size halves when it
    # takes longer, doubles back when well under), and batches take at most `duty` of the time:
    # the pause after one is its own time * (1/duty - 1), and at least `pause`.
    batch_seconds: float = 0.02
    duty: float = 0.05  # a twentieth: see docs/performance.md, "Retention"
    pause: float = 0.05
    archive_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            events_days=settings.retention_events_days or settings.retention_days,
            attempts_days=settings.retention_attempts_days or settings.retention_days,
            idempotency_days=settings.retention_idempotency_days,
            batch_size=settings.retention_batch_size,
            batch_seconds=settings.retention_batch_seconds,
            duty=settings.retention_duty,
            archive_dir=settings.archive_dir,
        )


@dataclass
class Result:
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    batches: int = 0
    consumer_floor: int | None = None  # events from this seq on are kept for a durable consumer
    archived: list[Path] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # partitions dropped whole (PostgreSQL's attempts)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


@dataclass(frozen=True)
class _Kind:
    name: str
    table: sa.TableClause  # a table, or one partition of one
    age: sa.ColumnElement[Any]  # when the row becomes removable; grows with seq (roughly)
    keep: Callable[[float], sa.ColumnElement[bool]]  # more conditions a removable row meets


def _no_pending_delivery() -> sa.ColumnElement[bool]:
    d = webhook_deliveries
    return ~sa.exists().where(d.c.event_id == events.c.id, d.c.status == "pending")


def _kinds() -> list[_Kind]:
    d = webhook_deliveries
    return [
        _Kind("attempts", webhook_attempts, webhook_attempts.c.created, lambda cutoff: sa.true()),
        # A delivery's `created` grows with seq; it goes once finished and last touched long ago.
        _Kind("deliveries", d, d.c.created, lambda cutoff: sa.and_(d.c.status != "pending", d.c.updated < cutoff)),
        _Kind("events", events, events.c.created, lambda cutoff: _no_pending_delivery()),
        _Kind("idempotency_keys", idempotency_keys, idempotency_keys.c.created, lambda cutoff: sa.true()),
    ]


def _cutoffs(policy: Policy, now: float) -> dict[str, float]:
    return {
        "attempts": now - policy.attempts_days * DAY,
        "deliveries": now - policy.events_days * DAY,
        "events": now - policy.events_days * DAY,
        "idempotency_keys": now - policy.idempotency_days * DAY,
    }


async def consumer_floor(conn: AsyncConnection) -> int | None:
    """The lowest position of a durable EventBus consumer: events from it on are kept."""
    floor = await conn.scalar(sa.select(sa.func.min(event_consumers.c.last_seq)))
    return None if floor is None else int(floor)


async def prune(
    db: Database,
    policy: Policy,
    *,
    now: float | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    kinds: Sequence[str] = KINDS,
) -> Result:
    """Remove (or, with `dry_run`, count) what is past retention; see the module's docstring."""
    now = time.time() if now is None else now
    cutoffs = _cutoffs(policy, now)
    result = Result()
    async with db.read() as conn:
        result.consumer_floor = await consumer_floor(conn)
    for kind in _kinds():
        if kind.name not in kinds:
            continue
        walked = [kind]
        if kind.name == "attempts" and await _partitioned(db):
            walked = await _drop_partitions(db, cutoffs[kind.name], now, dry_run, result, progress)
        for each in walked:
            await _walk(db, each, cutoffs[kind.name], policy, result, dry_run, progress)
    if "attempts" in kinds and not dry_run:
        await _prune_rollups(db, cutoffs["attempts"])
    return result


async def _walk(
    db: Database, kind: _Kind, cutoff: float, policy: Policy, result: Result, dry_run: bool, progress: Progress | None
) -> None:
    """Remove `kind`'s rows past `cutoff` in paced batches, oldest first."""
    after, size = 0, policy.batch_size
    while True:
        started = time.monotonic()
        removed, after, more = await _batch(db, kind, cutoff, after, size, policy, result, dry_run)
        result.removed[kind.name] += removed
        result.batches += 1
        if progress is not None:
            progress(kind.name, result.removed[kind.name])
        if not more:
            break
        if not dry_run:  # let writers in
            took = time.monotonic() - started
            if took > policy.batch_seconds:
                size = max(min(MIN_BATCH, policy.batch_size), size // 2)
            elif took < policy.batch_seconds / 2:
                size = min(policy.batch_size, size * 2)
            await _checkpoint(db)
            took = time.monotonic() - started  # the pause makes room for the checkpoint too
            await asyncio.sleep(max(policy.pause, took * (1 / policy.duty - 1)))


async def _checkpoint(db: Database) -> None:
    """SQLite: the pruner copies its own deletes' pages from the WAL into the database after each
    batch (a passive checkpoint: it takes no lock a writer waits for), so that the automatic
    checkpoint at 1,000 WAL pages does not fall to, and stall, an API writer's commit."""
    if not db.is_postgres:
        async with db.read() as conn:
            await dialect.checkpoint(conn)


async def _partitioned(db: Database) -> bool:
    if not db.is_postgres:
        return False
    async with db.read() as conn:
        return await partitions.is_partitioned(conn)


async def _drop_partitions(
    db: Database, cutoff: float, now: float, dry_run: bool, result: Result, progress: Progress | None
) -> list[_Kind]:
    """PostgreSQL's partitioned attempts: create the days ahead, drop the days wholly past
    retention; what is left to delete row by row is in the legacy and default partitions."""
    if not dry_run:
        await partitions.ensure_ahead(db, now)
    for dropped in await partitions.drop_before(db, cutoff, dry_run=dry_run, before_drop=_forget_partition):
        result.removed["attempts"] += dropped.rows
        result.dropped.append(dropped.name)
        if progress is not None:
            progress("attempts", result.removed["attempts"])
    async with db.read() as conn:
        names = await partitions.row_deleted(conn)
    walked = []
    for name in names:
        columns = ("seq", "created", "endpoint_id", "livemode", "status", "duration_ms")
        part = sa.table(name, *(sa.column(c) for c in columns))
        walked.append(_Kind("attempts", part, part.c.created, lambda cutoff: sa.true()))
    return walked


async def _forget_partition(conn: AsyncConnection, partition: partitions.Partition) -> None:
    """A partition about to be dropped takes its hours' rollups with it: its bounds are whole UTC
    days (or the start of time), so every attempt of those hours is in it, and none elsewhere."""
    assert partition.upper is not None  # `drop_before` never drops the default partition
    await rollups.forget_hours(conn, partition.lower, partition.upper)


async def _batch(
    db: Database, kind: _Kind, cutoff: float, after: int, size: int, policy: Policy, result: Result, dry_run: bool
) -> tuple[int, int, bool]:
    """One batch: (rows removed or counted, seq to continue after, whether to go on)."""
    table = kind.table
    seq = table.c.seq
    transaction = db.read() if dry_run else _write(db)
    async with transaction as conn:
        scan = sa.select(seq.label("seq"), kind.age.label("age")).where(seq > after)
        if kind.name == "events" and result.consumer_floor is not None:
            scan = scan.where(seq < result.consumer_floor)
        # The next `size` rows, summed up by the database (not returned to be walked in Python:
        # less CPU on the shared cores per batch): how many, the last, and the first young
        # enough to keep, where the run stops (everything after it is young too).
        window = scan.order_by(seq).limit(size).subquery()
        young = sa.func.min(sa.case((window.c.age >= cutoff, window.c.seq)))
        summary = sa.select(sa.func.count(), sa.func.min(window.c.seq), sa.func.max(window.c.seq), young)
        rows, first, highest, stop = (await conn.execute(summary)).one()
        if not rows or stop == first:
            return 0, after, False
        more = stop is None and rows == size
        last = int(highest) if stop is None else int(stop) - 1  # seq are integers
        removable = sa.and_(seq > after, seq <= last, kind.age < cutoff, kind.keep(cutoff))
        if dry_run:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(table).where(removable))
            return int(count or 0), last, more
        if kind.name == "events" and policy.archive_dir is not None:
            query = event_log.select_events_json().add_columns(seq).where(removable).order_by(seq)
            archive = (await conn.execute(query)).all()
            if not archive:
                return 0, last, more
            result.archived += await asyncio.to_thread(_append_archive, policy.archive_dir, archive)
            removable = sa.and_(seq.in_([r.seq for r in archive]), kind.keep(cutoff))
        if kind.name == "attempts":  # the rollups keep counting what is stored
            await rollups.subtract(conn, removable, table)
        removed = (await conn.execute(table.delete().where(removable))).rowcount
        return int(removed or 0), last, more


async def _prune_rollups(db: Database, cutoff: float) -> None:
    """Rollup hours whose attempts are all gone (subtracted as they went): a few rows each."""
    async with _write(db) as conn:
        await rollups.prune(conn, cutoff)


@contextlib.asynccontextmanager
async def _write(db: Database) -> AsyncIterator[AsyncConnection]:
    async with db.transaction() as tx:
        await dialect.lock(tx.conn, dialect.Lock.RETENTION)  # it reads its rows once it holds the lock
        yield tx.conn


def archive_name(created: int) -> str:
    return f"events-{datetime.fromtimestamp(created, UTC):%Y-%m-%d}.jsonl.gz"


def _append_archive(folder: Path, rows: Sequence[Any]) -> list[Path]:
    """Append rendered events to their day's file (a new gzip member each time) and fsync it."""
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[Path, list[bytes]] = {}
    for row in rows:
        m = row._mapping
        by_file.setdefault(folder / archive_name(int(m["created"])), []).append(event_log.render_json(m) + b"\n")
    for path, lines in by_file.items():
        with open(path, "ab") as raw:
            with gzip.GzipFile(fileobj=raw, mode="ab") as gz:
                gz.write(b"".join(lines))
            raw.flush()
            os.fsync(raw.fileno())
    return list(by_file)


class Retention(Periodic):
    """The background half's `Service`: prunes on start and every `interval` seconds."""

    name = "paywire-retention"
    log_traceback = True

    def __init__(self, db: Database, settings: Settings, *, interval: float | None = None) -> None:
        super().__init__(float(settings.retention_interval if interval is None else interval))
        self.db = db
        self.policy = Policy.from_settings(settings)
        self.last: Result | None = None

    async def tick(self) -> None:
        self.last = await prune(self.db, self.policy)
        if self.last.total:
            log.info("retention: removed %s", ", ".join(f"{n} {k}" for k, n in self.last.removed.items()))

"""PostgreSQL only: `webhook_attempts` is partitioned by day of `created`.

Attempts are append-only and the largest table, so retention removes them a day at a time by
dropping that day's partition (no dead rows, nothing for vacuum), not by deleting rows.

- Partitions are named `webhook_attempts_pYYYYMMDD` and cover one UTC day each,
  [midnight, next midnight). The worker's retention service creates them `AHEAD_DAYS` ahead
  (`ensure`), and migration 0015 creates the first ones.
- `webhook_attempts_default` (the DEFAULT partition) takes a row no day partition covers (the
  worker was stopped longer than `AHEAD_DAYS`, a clock far off), so an insert never fails; its
  old rows are deleted in batches. A day whose rows already sit in it is not created (PostgreSQL
  would refuse: they would belong to the new partition) and stays in the default partition.
- `webhook_attempts_legacy`, on a database that had attempts when it was migrated, is the old
  table attached as the partition of everything before the first day partition: no row was
  copied. Its rows past retention are deleted in batches until all are, then it is dropped.
- Uniqueness: a partitioned table's unique constraints must contain the partition key, so
  `seq` and `id` are unique per partition (each partition has its own primary key on `seq` and a
  unique constraint on `id`). Across partitions, `seq` stays unique because every partition
  takes it from the one sequence `webhook_attempts_seq_seq` (a sequence never hands out a number
  twice), and an attempt's `id` is made once, when the attempt is recorded, from 83 random bits
  and the millisecond (`paywire.ids.new_id`); nothing ever moves a row between partitions.
- Creating and dropping a partition takes a lock on the whole table for an instant; each waits
  at most `LOCK_TIMEOUT_MS` for it (writers queue behind a waiting DDL statement), and one that
  times out is tried again at the next retention run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db import dialect
from paywire.db.engine import Database

log = logging.getLogger("paywire.db")

PARENT = "webhook_attempts"
LEGACY = "webhook_attempts_legacy"
DEFAULT = "webhook_attempts_default"
DAY = 86_400
AHEAD_DAYS = 7
LOCK_TIMEOUT_MS = 200
_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: float | None  # None: from the start of time (MINVALUE), or the default partition
    upper: float | None  # None: the default partition

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT or (self.lower is None and self.upper is None)


def day_start(moment: float) -> int:
    return int(moment // DAY * DAY)


def day_name(start: int) -> str:
    return f"{PARENT}_p{datetime.fromtimestamp(start, UTC):%Y%m%d}"


def _bound(text: str) -> float | None:
    text = text.strip().strip("'")
    return None if text in ("MINVALUE", "MAXVALUE") else float(text)


async def is_partitioned(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = await conn.scalar(sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT})
    return bool(kind == "p")


async def listing(conn: AsyncConnection) -> list[Partition]:
    """The partitions of `webhook_attempts`, oldest first (the default partition last)."""
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": PARENT},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:  # DEFAULT
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, _bound(match.group(1)), _bound(match.group(2))))
    return sorted(found, key=lambda p: (p.is_default, p.lower if p.lower is not None else float("-inf")))


def _covered(partitions: list[Partition], start: int) -> bool:
    for p in partitions:
        if p.is_default:
            continue
        lower = float("-inf") if p.lower is None else p.lower
        upper = float("inf") if p.upper is None else p.upper
        if lower <= start < upper:
            return True
    return False


async def create_day(conn: AsyncConnection, start: int) -> str:
    """Create the partition of the UTC day starting at `start` (the caller's transaction)."""
    name = day_name(start)
    await conn.execute(
        sa.text(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ({start}) TO ({start + DAY})")
    )
    await conn.execute(sa.text(f"ALTER TABLE {name} ADD CONSTRAINT pk_{name} PRIMARY KEY (seq)"))
    await conn.execute(sa.text(f"ALTER TABLE {name} ADD CONSTRAINT uq_{name}_id UNIQUE (id)"))
    return name


async def _locked(db: Database, work: Callable[[AsyncConnection], Any], what: str) -> Any:
    """Run `work` in its own transaction with the partition lock and a short lock timeout; a
    failure (the table busy past the timeout, rows in the default partition) is logged and
    returns None: the next retention run tries again."""
    try:
        async with db.transaction() as tx:
            await dialect.lock(tx.conn, dialect.Lock.PARTITION)
            await tx.conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
            return await work(tx.conn)
    except sa.exc.DBAPIError as exc:
        log.warning("partitions: %s not done now (%s)", what, str(exc.orig).splitlines()[0] if exc.orig else exc)
        return None


async def ensure(db: Database, since: float, until: float) -> list[str]:
    """Create the day partitions of [since, until) that do not exist yet; their names."""
    async with db.read() as conn:
        existing = await listing(conn)
    created = []
    for day in range(day_start(since), int(until), DAY):
        if _covered(existing, day):
            continue

        async def create(conn: AsyncConnection, day: int = day) -> str | None:
            if _covered(await listing(conn), day):  # another worker was first: read again under the lock
                return None
            return await create_day(conn, day)

        name = await _locked(db, create, f"creating {day_name(day)}")
        if name:
            created.append(name)
    return created


async def ensure_ahead(db: Database, now: float, days: int = AHEAD_DAYS) -> list[str]:
    return await ensure(db, now, day_start(now) + (days + 1) * DAY)


@dataclass(frozen=True)
class Dropped:
    name: str
    rows: int


async def drop_before(
    db: Database,
    cutoff: float,
    *,
    dry_run: bool = False,
    before_drop: Callable[[AsyncConnection, Partition], Awaitable[None]] | None = None,
) -> list[Dropped]:
    """Drop (with `dry_run`, only count) every partition whose rows are all older than `cutoff`.
    `before_drop` runs in the dropping transaction (retention takes the rows out of the rollups)."""
    async with db.read() as conn:
        old = [p for p in await listing(conn) if not p.is_default and p.upper is not None and p.upper <= cutoff]
    dropped = []
    for partition in old:
        if dry_run:
            async with db.read() as conn:
                rows = int(await conn.scalar(sa.text(f"SELECT count(*) FROM {partition.name}")) or 0)
            dropped.append(Dropped(partition.name, rows))
            continue

        async def drop(conn: AsyncConnection, name: str = partition.name, part: Partition = partition) -> int:
            rows = int(await conn.scalar(sa.text(f"SELECT count(*) FROM {name}")) or 0)
            if before_drop is not None:
                await before_drop(conn, part)
            await conn.execute(sa.text(f"DROP TABLE {name}"))
            return rows

        rows = await _locked(db, drop, f"dropping {partition.name}")
        if rows is not None:
            dropped.append(Dropped(partition.name, rows))
    return dropped


async def row_deleted(conn: AsyncConnection) -> list[str]:
    """The partitions whose old rows are deleted in batches: the legacy and default ones."""
    return [p.name for p in await listing(conn) if p.is_default or p.name == LEGACY]


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's `include_object` for comparing the schema with `schema.py`: the partitions are
    storage, not tables of their own, and on PostgreSQL `webhook_attempts`'s unique `id` is held
    by each partition (see the module's docstring), not by the parent table."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if dialect != "postgresql":
            return True
        if type_ == "table" and name is not None and name.startswith(f"{PARENT}_"):
            return False
        table = getattr(obj, "table", None)
        return not (type_ == "unique_constraint" and getattr(table, "name", None) == PARENT)

    return include

"""What differs between SQLite and PostgreSQL, in one place: the rest of Paywire calls these.

- **Locks.** PostgreSQL runs many writers at once, so work that must not interleave takes a
  transaction-scoped advisory lock (`lock`, `lock_names`); the keys are `Lock`'s, defined here
  once. SQLite has one writer at a time (every write transaction opens `BEGIN IMMEDIATE`), which
  already serialises them: there these are no-ops.
- **Row locks.** `FOR UPDATE [SKIP LOCKED]` is written on the query as usual
  (`query.with_for_update(skip_locked=True)`); SQLAlchemy renders nothing for it on SQLite, where
  the single writer makes it needless.
- **Wake-ups.** `notify` sends PostgreSQL's `NOTIFY` on a channel at commit, for the listeners
  in other processes (`paywire.db.signal`); on SQLite other processes poll.
- **Upserts.** `insert_for` gives the dialect's `INSERT` with `ON CONFLICT` support.
- **Many rows.** `in_param` and `insert_rows` (`paywire.db.bulk`): id lists and bulk inserts
  that PostgreSQL prepares once whatever the count.
- **WAL.** `checkpoint`: SQLite's passive WAL checkpoint; PostgreSQL needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.bulk import in_param, insert_rows, is_postgres

__all__ = ["Lock", "checkpoint", "in_param", "insert_for", "insert_rows", "is_postgres", "lock", "lock_names", "notify"]


class Lock(IntEnum):
    """PostgreSQL advisory lock keys (`pg_advisory_xact_lock`): any fixed numbers, each once."""

    MIGRATION = 7_346_221
    """`paywire migrate` runs from several processes: one at a time."""
    EVENT_ORDER = 7_346_222
    """Appending events: they commit in `seq` order, so a reader never skips a later-committed one."""
    RETENTION = 7_346_223
    """One pruner at a time."""
    PARTITION = 7_346_224
    """One creator or dropper of partitions at a time."""


async def lock(conn: AsyncConnection, key: Lock) -> None:
    """Hold `key` until this transaction ends (PostgreSQL; SQLite's one writer already does)."""
    if is_postgres(conn):
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(key)})


async def lock_names(conn: AsyncConnection, names: Sequence[str]) -> None:
    """Hold a lock per name until this transaction ends, taken in the order given (sort the names,
    so that two transactions never wait on each other); PostgreSQL only, as `lock`."""
    if is_postgres(conn) and names:
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(n)) FROM unnest(CAST(:n AS text[])) AS n"),
            {"n": list(names)},
        )


async def notify(conn: AsyncConnection, channel: str) -> None:
    """Wake `channel`'s listeners in other processes once this transaction commits (PostgreSQL)."""
    if is_postgres(conn):
        await conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": channel})


def insert_for(conn: AsyncConnection, table: sa.Table) -> Any:
    """`INSERT INTO table` of this connection's dialect, with `on_conflict_do_nothing/update`."""
    return postgresql.insert(table) if is_postgres(conn) else sqlite.insert(table)


async def checkpoint(conn: AsyncConnection) -> None:
    """SQLite: copy committed pages from the WAL into the database without blocking writers."""
    if not is_postgres(conn):
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

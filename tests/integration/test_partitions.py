"""PostgreSQL's `webhook_attempts` partitioned by day (`paywire.db.partitions`, migration
0015): retention drops whole days, creates the days ahead, deletes only the legacy and default
partitions' rows in batches; the migration converts a table that has rows, and back."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa

from paywire.db import migrate, partitions
from paywire.db.engine import Database
from paywire.db.partitions import DAY, day_start
from paywire.db.schema import webhook_attempts
from paywire.ids import new_id
from paywire.ops.retention import Policy, prune
from paywire.webhooks import rollups
from tests.conftest import PG_ADMIN_URL, _truncate_pg
from tests.integration.test_migrations import _downgrade, _schema_differences

pytestmark = pytest.mark.postgres

NOW = float(day_start(1_790_000_000) + 12 * 3600)  # noon UTC, a fixed day: partitions are by day
POLICY = Policy(events_days=30, attempts_days=30, pause=0.0)
CUTOFF = NOW - 30 * DAY


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    await _truncate_pg(pg_url)
    database = Database(pg_url)
    yield database
    await database.dispose()


@pytest.fixture
async def empty_pg() -> AsyncIterator[Database]:
    name = f"paywire_partitions_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield database
    finally:
        await database.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _attempt(at: float, attempt_id: str | None = None) -> dict[str, object]:
    return {
        "id": attempt_id or new_id("wha"),
        "livemode": False,
        "delivery_seq": 1,
        "event_id": "evt_x",
        "endpoint_id": "we_x",
        "status": "succeeded",
        "retry_count": 0,
        "duration_ms": 5,
        "created": at,
    }


async def _insert(db: Database, moments: list[float]) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(webhook_attempts.insert(), [_attempt(at) for at in moments])
        await rollups.rebuild(tx.conn)  # as the recorder would have kept them


async def _rollups_match_the_attempts(db: Database) -> None:
    """Dropping a partition or deleting rows, retention keeps the rollups summing to what is stored."""
    async with db.read() as conn:
        stored = await conn.scalar(sa.select(sa.func.count()).select_from(webhook_attempts))
        assert await rollups.count(conn, False) == stored


async def _created(db: Database) -> list[float]:
    async with db.read() as conn:
        return sorted(float(c) for c in (await conn.scalars(sa.select(webhook_attempts.c.created))).all())


async def _partition_names(db: Database) -> list[str]:
    async with db.read() as conn:
        return [p.name for p in await partitions.listing(conn)]


async def test_old_days_are_dropped_whole_and_the_days_ahead_created(db: Database) -> None:
    async with db.read() as conn:
        assert await partitions.is_partitioned(conn)
    assert partitions.day_name(day_start(NOW - 45 * DAY)) in await partitions.ensure(db, NOW - 45 * DAY, NOW)
    old_days = [NOW - d * DAY for d in range(45, 30, -1)]  # every one of these days is past the cutoff
    boundary = [CUTOFF - 3600, CUTOFF + 3600]  # the cutoff's own day: kept whole, a day longer
    young = [NOW - d * DAY for d in range(29, 0, -1)] + [NOW]
    strays = [NOW - 400 * DAY, NOW + 400 * DAY]  # no day partition: the default partition
    await _insert(db, [at + s for at in old_days for s in (0, 60, 120)] + boundary + young + strays)

    before = await _partition_names(db)
    counted = await prune(db, POLICY, now=NOW, dry_run=True, kinds=["attempts"])
    assert await _partition_names(db) == before and len(await _created(db)) == 45 + 2 + 30 + 2
    result = await prune(db, POLICY, now=NOW, kinds=["attempts"])

    assert result.removed["attempts"] == counted.removed["attempts"] == 45 + 1  # 15 days whole, 1 stray row
    assert sorted(result.dropped) == sorted(partitions.day_name(day_start(at)) for at in old_days)
    assert await _created(db) == sorted(boundary + young + [NOW + 400 * DAY])
    names = await _partition_names(db)
    assert not set(result.dropped) & set(names)
    for ahead in range(8):  # today and a week ahead exist, for the writers to come
        assert partitions.day_name(day_start(NOW + ahead * DAY)) in names
    again = await prune(db, POLICY, now=NOW, kinds=["attempts"])
    assert again.removed["attempts"] == 0 and again.dropped == []
    await _rollups_match_the_attempts(db)


async def test_ids_and_seqs_stay_unique(db: Database) -> None:
    await partitions.ensure(db, NOW - DAY, NOW + DAY)
    await _insert(db, [NOW - DAY, NOW])
    async with db.read() as conn:
        seqs = (await conn.scalars(sa.select(webhook_attempts.c.seq))).all()
    assert len(set(seqs)) == 2  # one sequence for every partition
    same = new_id("wha")
    async with db.transaction() as tx:
        await tx.conn.execute(webhook_attempts.insert().values(**_attempt(NOW, same)))
    with pytest.raises(sa.exc.IntegrityError):
        async with db.transaction() as tx:
            await tx.conn.execute(webhook_attempts.insert().values(**_attempt(NOW + 60, same)))


async def test_the_migration_attaches_the_rows_it_finds_and_goes_back(empty_pg: Database) -> None:
    db = empty_pg
    await migrate.upgrade(db, "0014_renewal_storm")
    now = time.time()
    await _insert(db, [now - 40 * DAY, now - 3600])

    await migrate.upgrade(db)
    async with db.read() as conn:
        assert await partitions.is_partitioned(conn)
        assert await conn.run_sync(_schema_differences) == []
        legacy = int(await conn.scalar(sa.text("SELECT count(*) FROM webhook_attempts_legacy")) or 0)
    assert legacy == 2
    names = await _partition_names(db)
    assert names[0] == partitions.LEGACY and names[-1] == partitions.DEFAULT
    assert partitions.day_name(day_start(now + 7 * DAY)) in names
    await _insert(db, [now + DAY])  # tomorrow: its own partition; seq goes on from the old table's
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(webhook_attempts.c.seq, webhook_attempts.c.created))).all()
    assert len({r.seq for r in rows}) == 3 and max(rows, key=lambda r: r.seq).created == now + DAY

    result = await prune(db, POLICY, now=now, kinds=["attempts"])  # the legacy rows go one by one
    assert result.removed["attempts"] == 1 and result.dropped == []
    assert len(await _created(db)) == 2

    async with db.engine.connect() as conn:
        await conn.run_sync(_downgrade, "0014_renewal_storm")
        await conn.commit()
    async with db.read() as conn:
        assert not await partitions.is_partitioned(conn)
    assert await _created(db) == [now - 3600, now + DAY]
    await migrate.upgrade(db)
    async with db.read() as conn:
        assert await conn.run_sync(_schema_differences) == []

"""Migrations on a fresh database: the head schema is `schema.metadata`, and 0005 (pending_webhooks
counted on read instead of stored) keeps every event's count, up and down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paywire.db import migrate, partitions
from paywire.db.engine import Database
from paywire.db.schema import metadata
from paywire.events import log as event_log
from tests.conftest import PG_ADMIN_URL

BEFORE = "0004_lean_delivery_indexes"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield db
        await db.dispose()
        return
    name = f"paywire_migrations_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield db
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _downgrade(connection: sa.Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _schema_differences(connection: sa.Connection) -> list[object]:
    opts = {"include_object": partitions.include_object(connection.dialect.name)}
    return list(compare_metadata(MigrationContext.configure(connection, opts=opts), metadata))


async def test_pending_webhooks_survive_0005_up_and_down(empty_database: Database) -> None:
    db = empty_database
    await migrate.upgrade(db, BEFORE)
    async with db.transaction() as tx:
        await tx.conn.execute(
            sa.text(
                "INSERT INTO events (id, livemode, type, api_version, object_type, object_id, data,"
                " pending_webhooks, metadata, created) VALUES ('evt_1', false, 'customer.created', 'v',"
                " 'customer', 'cus_1', '{}', 1, '{}', 1)"
            )
        )
        for endpoint_id, status in (("we_1", "pending"), ("we_2", "succeeded")):
            await tx.conn.execute(
                sa.text(
                    "INSERT INTO webhook_deliveries (event_id, endpoint_id, livemode, status, attempts,"
                    " next_attempt, created, updated) VALUES ('evt_1', :e, false, :s, 0, 0, 1, 1)"
                ),
                {"e": endpoint_id, "s": status},
            )

    await migrate.upgrade(db)
    async with db.read() as conn:
        assert await conn.run_sync(_schema_differences) == []
        row = await event_log.get(conn, "evt_1", False)
    assert row is not None and event_log.render(row)["pending_webhooks"] == 1

    async with db.engine.begin() as conn:
        await conn.run_sync(_downgrade, BEFORE)
    async with db.read() as conn:
        assert (await conn.execute(sa.text("SELECT pending_webhooks FROM events"))).scalar_one() == 1


async def test_0011_fills_the_attempt_rollups_from_stored_attempts(empty_database: Database) -> None:
    from paywire.webhooks import rollups

    db = empty_database
    await migrate.upgrade(db, "0010_secrets_encrypted")
    hour = 1_700_000_000 // 3600 * 3600
    attempts = [  # (endpoint, created, status, duration_ms)
        ("we_1", hour + 10.5, "succeeded", 5),
        ("we_1", hour + 3599.9, "failed", 10),  # the end of the hour stays in it
        ("we_1", hour + 3600.0, "succeeded", 12_000),  # the next hour; over 10 s
        ("we_2", hour + 20.0, "succeeded", 99),
    ]
    async with db.transaction() as tx:
        for i, (endpoint_id, created, status, ms) in enumerate(attempts):
            await tx.conn.execute(
                sa.text(
                    "INSERT INTO webhook_attempts (id, livemode, delivery_seq, event_id, endpoint_id, status,"
                    " retry_count, duration_ms, created) VALUES (:id, false, 1, 'evt_1', :e, :s, 0, :ms, :c)"
                ),
                {"id": f"wha_{i}", "e": endpoint_id, "s": status, "ms": ms, "c": created},
            )
    await migrate.upgrade(db)
    columns = ", ".join(rollups.COUNTS)
    query = f"SELECT endpoint_id, hour, slot, livemode, {columns} FROM webhook_attempt_rollups ORDER BY 1, 2"
    async with db.read() as conn:
        assert await conn.run_sync(_schema_differences) == []
        migrated = [tuple(row) for row in (await conn.execute(sa.text(query))).all()]
    rows = [
        {"endpoint_id": e, "livemode": False, "created": c, "status": s, "duration_ms": ms} for e, c, s, ms in attempts
    ]
    live = rollups.rows_for(rows, owner="x")  # what recording the same attempts adds
    assert migrated == [(r["endpoint_id"], r["hour"], 0, False, *(r[n] for n in rollups.COUNTS)) for r in live]
    assert [m[:6] for m in migrated] == [
        ("we_1", hour, 0, False, 1, 1),
        ("we_1", hour + 3600, 0, False, 1, 0),
        ("we_2", hour, 0, False, 1, 0),
    ]
    async with db.engine.begin() as conn:
        await conn.run_sync(_downgrade, "0010_secrets_encrypted")

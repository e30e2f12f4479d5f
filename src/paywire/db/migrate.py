"""Bring the schema up to date (Alembic; the scripts ship inside the package)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from paywire.db import dialect
from paywire.db.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: sa.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate to `revision`; safe to run from several processes at once."""
    async with db.engine.connect() as conn:
        # On SQLite this opens BEGIN IMMEDIATE: a second migrator waits, then finds nothing to do.
        await conn.execution_options(paywire_write=True)
        async with conn.begin():
            await dialect.lock(conn, dialect.Lock.MIGRATION)
            await conn.run_sync(_upgrade, revision)

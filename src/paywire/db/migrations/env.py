"""Alembic environment: runs on the connection `paywire.db.migrate` hands it, or on its own."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from paywire.db import partitions
from paywire.db.engine import Database
from paywire.db.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=partitions.include_object(connection.dialect.name),  # partitions are storage
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    from paywire.settings import load

    db = Database(context.config.get_main_option("sqlalchemy.url") or load().database_url)
    async with db.engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await db.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())

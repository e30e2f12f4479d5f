"""A PostgreSQL database of a benchmark's own, created on the server the tests use and dropped
afterwards, whatever happens in between."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator


async def create_pg_database(admin_url: str, prefix: str = "paywire_bench") -> tuple[str, str]:
    """A new, empty database named `<prefix>_<random>` beside `admin_url`'s: its URL and name."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


async def drop_pg_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Yields the URL of a new, empty database, dropped when the block ends."""
    url, name = await create_pg_database(admin_url, prefix)
    try:
        yield url
    finally:
        await drop_pg_database(admin_url, name)

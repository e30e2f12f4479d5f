"""Shared fixtures: a real database (SQLite file or PostgreSQL), a real server on 127.0.0.1.

PostgreSQL tests use one database per test session (created from the server's `test`
database, dropped at the end) and empty every table between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from paywire import keys
from paywire.app import PaywireApp
from paywire.cli.http import HttpLimits, protocol_class
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import metadata

T = TypeVar("T")

# Every process of the tests (this one, and the `paywire` commands they start) shares one
# encryption key for the secrets stored in the database; PostgreSQL refuses to start without one.
TEST_ENCRYPTION_KEY = "dGVzdHMtb25seS1lbmNyeXB0aW9uLWtleS0zMmJ5dGU="
os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)

PG_ADMIN_URL = os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh loop in a thread (works inside a running loop too)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    if not _pg_available():
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it; see .ci/run)")
    name = f"paywire_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    run_sync(create())
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    async def migrate_once() -> None:
        db = Database(url)
        await migrate.upgrade(db)
        await db.dispose()

    run_sync(migrate_once())
    yield url
    run_sync(drop())


async def _truncate_pg(url: str) -> None:
    db = Database(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await db.dispose()


# `PAYWIRE_TEST_DATABASE=memory`: the "sqlite" runs use `sqlite:///:memory:` instead of a file.
# Each `Database` of that URL is its own private database, so a test that opens a second one on
# the same URL (a restart, a `paywire` command it starts) sees an empty database there.
SQLITE_IN_MEMORY = os.environ.get("PAYWIRE_TEST_DATABASE", "file") == "memory"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs twice: on a SQLite file (or memory, above) and on PostgreSQL."""
    if request.param == "sqlite":
        return "sqlite:///:memory:" if SQLITE_IN_MEMORY else f"sqlite:///{tmp_path / 'paywire.db'}"
    url: str = request.getfixturevalue("pg_url")
    await _truncate_pg(url)
    return url


@pytest.fixture
async def paywire(database_url: str) -> AsyncIterator[PaywireApp]:
    app = PaywireApp(database_url)
    async with app.running():
        yield app


async def new_key(app: PaywireApp, *, live: bool = False) -> str:
    async with app.db.transaction() as tx:
        return await keys.create_key(tx.conn, livemode=live, now=time.time())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real uvicorn serving a PaywireApp on 127.0.0.1, with a test-mode and a live-mode key."""

    app: PaywireApp
    url: str
    test_key: str
    live_key: str

    def client(self, key: str | None = None, **kwargs: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.test_key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


async def start_server(app: PaywireApp) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    # The HTTP protocol `paywire serve` runs (request-head deadline, transport in the scope).
    http = protocol_class(HttpLimits())
    config = uvicorn.Config(app.api, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=http)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    app: Any = server.config.app  # the PaywireApp's ASGI app, which uvicorn types loosely
    app.state.services.drain()
    server.should_exit = True
    try:
        await asyncio.wait_for(task, 10)
    except TimeoutError:
        task.cancel()


@contextlib.asynccontextmanager
async def serving(app: PaywireApp) -> AsyncIterator[Server]:
    """`app` served on 127.0.0.1 (a free port) with a test and a live key, stopped afterwards."""
    uv, task, url = await start_server(app)
    try:
        yield Server(app, url, await new_key(app), await new_key(app, live=True))
    finally:
        await stop_server(uv, task)


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    async with serving(PaywireApp(database_url)) as running:
        yield running


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the test-mode key."""
    async with server.client() as client:
        yield client

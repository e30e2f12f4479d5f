"""Database outages that are not a lost connection: the pool exhausted, a statement timeout, a
full disk.

The first two answer a 503 whose code names them, with `Retry-After`; a full disk answers 507
`storage_full` (not a brief outage: no `Retry-After`); never a 500. Real databases, the outage
made for real: every pooled connection held, a table locked past the timeout, the SQLite file
capped at its size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.app import PaywireApp
from tests.conftest import Server, new_key, start_server, stop_server


@pytest.fixture
async def small_pool_server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setenv("PAYWIRE_DATABASE_POOL_TIMEOUT", "0.2")
    app = PaywireApp(database_url, run_worker=False)
    uv, task, url = await start_server(app)
    try:
        yield Server(app, url, await new_key(app), await new_key(app, live=True))
    finally:
        await stop_server(uv, task)


def _assert_503(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["retry-after"] == "1"


async def test_pool_exhausted_answers_503_naming_it(small_pool_server: Server) -> None:
    server = small_pool_server
    held: list[AsyncConnection] = []
    async with server.client() as client:
        assert (await client.get("/api/customers")).status_code == 200
        try:
            while True:  # every connection of the pool, overflow included
                held.append(await server.app.db.engine.connect())
        except sa.exc.TimeoutError:
            pass
        try:
            _assert_503(await client.get("/api/customers"), "database_pool_exhausted")
            _assert_503(await client.post("/api/customers", json={"name": "a"}), "database_pool_exhausted")
            response = await client.post("/api/customers", json={"name": "a"}, headers={"Idempotency-Key": "k1"})
            _assert_503(response, "database_pool_exhausted")
        finally:
            for conn in held:
                await conn.close()
        # The same keep-alive connection carries on once connections come free.
        assert (
            await client.post("/api/customers", json={"name": "a"}, headers={"Idempotency-Key": "k1"})
        ).status_code == 200
        assert (await client.get("/api/customers")).json()["count"] == 1


@pytest.fixture
async def pg_timeout_server(pg_url: str) -> AsyncIterator[Server]:
    from tests.conftest import _truncate_pg

    await _truncate_pg(pg_url)
    app = PaywireApp(pg_url, run_worker=False)

    def statement_timeout(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET statement_timeout = 300")
        cursor.close()

    sa_event.listen(app.db.engine.sync_engine, "connect", statement_timeout)
    uv, task, url = await start_server(app)
    try:
        yield Server(app, url, await new_key(app), await new_key(app, live=True))
    finally:
        await stop_server(uv, task)


@pytest.mark.postgres
async def test_statement_timeout_answers_503_naming_it(pg_timeout_server: Server) -> None:
    server = pg_timeout_server
    dsn = make_url(server.app.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    locker = await asyncpg.connect(dsn)
    try:
        async with server.client() as client:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            try:
                _assert_503(await client.post("/api/customers", json={"name": "a"}), "database_timeout")
                response = await client.post("/api/customers", json={"name": "b"}, headers={"Idempotency-Key": "k"})
                _assert_503(response, "database_timeout")
            finally:
                await tx.rollback()
            response = await client.post("/api/customers", json={"name": "b"}, headers={"Idempotency-Key": "k"})
            assert response.status_code == 200, response.text  # the 503 forgot the key: the retry ran
            assert (await client.get("/api/customers")).json()["count"] == 1
    finally:
        await locker.close()


async def test_sqlite_disk_full_answers_507_storage_full(tmp_path: Path) -> None:
    """SQLITE_FULL, made for real: `PRAGMA max_page_count` caps the file at its current size."""
    app = PaywireApp(f"sqlite:///{tmp_path / 'paywire.db'}", run_worker=False)
    cap: dict[str, int | None] = {"pages": None}

    def limit_pages(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(
            "PRAGMA max_page_count = 1073741823" if cap["pages"] is None else f"PRAGMA max_page_count = {cap['pages']}"
        )
        cursor.close()

    sa_event.listen(app.db.engine.sync_engine, "checkout", limit_pages)
    uv, task, url = await start_server(app)
    try:
        server = Server(app, url, await new_key(app), await new_key(app, live=True))
        async with server.client() as client:
            assert (await client.post("/api/customers", json={"name": "before"})).status_code == 200
            async with app.db.read() as conn:
                cap["pages"] = int(await conn.scalar(sa.text("PRAGMA page_count")) or 0)
            big = {"name": "x", "description": "d" * 5000, "metadata": {f"k{i}": "v" * 500 for i in range(40)}}
            full = None
            for i in range(50):
                response = await client.post("/api/customers", json=big, headers={"Idempotency-Key": f"k{i % 2}-{i}"})
                if response.status_code != 200:
                    full = response
                    break
            assert full is not None, "the capped database never filled up"
            assert full.status_code == 507, full.text
            error = full.json()["error"]
            assert error["code"] == "storage_full" and error["type"] == "api_error", error
            assert "disk is full" in error["message"] and "retry-after" not in full.headers
            plain = await client.post("/api/customers", json=big)
            assert plain.status_code == 507 and plain.json()["error"]["code"] == "storage_full", plain.text
            assert (await client.get("/api/customers")).status_code == 200  # reads still work
            cap["pages"] = None  # space freed
            assert (await client.post("/api/customers", json=big)).status_code == 200
    finally:
        await stop_server(uv, task)

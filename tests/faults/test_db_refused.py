"""A database that refuses connections: `ALTER DATABASE … ALLOW_CONNECTIONS false`, then every
backend of it terminated (`pg_terminate_backend`), against a real `paywire serve --no-worker`.

Only this test session's own database is closed, never the shared `test` one, and it is always
opened again (in a `finally`). While it is closed every request, GET or POST, with or without
`Idempotency-Key`, answers 503 `database_unavailable` with `Retry-After` on the same keep-alive
connection; once it is open again the same requests succeed, with no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from paywire.db.engine import Database
from paywire.db.schema import customers, events, idempotency_keys
from tests.conftest import PG_ADMIN_URL
from tests.faults.harness import Procs, make_key

pytestmark = pytest.mark.postgres

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Gate:
    """Closes and opens this test's own database, from a connection to the admin database."""

    def __init__(self, url: str, admin: asyncpg.Connection) -> None:
        self.name = str(make_url(url).database)
        assert self.name != make_url(PG_ADMIN_URL).database, "never close the shared database"
        self.admin = admin

    async def close(self) -> int:
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        return int(await self.admin.fetchval(TERMINATE, self.name))

    async def open(self) -> None:
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def gate(fault_url: str) -> AsyncIterator[Gate]:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    g = Gate(fault_url, admin)
    try:
        yield g
    finally:
        await g.open()
        await admin.close()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable", response.text
    assert response.headers["retry-after"] == "1"


async def _counts(url: str) -> tuple[int, int]:
    db = Database(url)
    try:
        async with db.read() as conn:
            made = await conn.scalar(sa.select(sa.func.count()).select_from(customers))
            created = await conn.scalar(sa.select(sa.func.count()).where(events.c.type == "customer.created"))
        return int(made or 0), int(created or 0)
    finally:
        await db.dispose()


async def test_refused_connections_answer_503_then_recover(fault_url: str, procs: Procs, gate: Gate) -> None:
    headers = {"Authorization": f"Bearer {await make_key(fault_url)}"}
    await procs.start_serve()
    async with httpx.AsyncClient(base_url=procs.api_url, headers=headers, timeout=10) as client, asyncio.timeout(40):
        assert (await client.get("/api/customers")).status_code == 200
        assert await gate.close() > 0
        try:
            for _ in range(3):  # the same keep-alive connection every time: never reset
                _assert_unavailable(await client.get("/api/customers"))
                _assert_unavailable(await client.post("/api/customers", json={"name": "a"}))
                response = await client.post("/api/customers", json={"name": "b"}, headers={"Idempotency-Key": "k-1"})
                _assert_unavailable(response)
        finally:
            await gate.open()
        assert (await client.get("/api/customers")).status_code == 200
        assert (await client.post("/api/customers", json={"name": "a"})).status_code == 200
        response = await client.post("/api/customers", json={"name": "b"}, headers={"Idempotency-Key": "k-1"})
        assert response.status_code == 200, response.text
    assert await _counts(fault_url) == (2, 2)
    assert procs.serve is not None and procs.serve.poll() is None
    assert not procs.escaped(), procs.escaped()[:5]


async def _blocked_on_lock(admin: asyncpg.Connection, name: str, count: int) -> None:
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
    deadline = time.monotonic() + 10
    while await admin.fetchval(query, name) < count:
        assert time.monotonic() < deadline, "the requests never reached the lock"
        await asyncio.sleep(0.05)


async def test_key_of_a_request_cut_off_by_the_outage_is_free_for_its_retry(
    fault_url: str, procs: Procs, gate: Gate
) -> None:
    """The database goes away while two Idempotency-Key requests run, and is still away when the
    middleware records how they ended (5xx, nothing written): their keys are not left `started`
    (which answered 409 `idempotency_key_in_use` to every retry for 60 s). One retry comes at
    once; for the other the test waits until the server recorded the end by itself (what a
    retry sent to another API process relies on)."""
    headers = {"Authorization": f"Bearer {await make_key(fault_url)}"}
    await procs.start_serve()
    locker = await asyncpg.connect(_dsn(fault_url))
    lock = locker.transaction()
    await lock.start()
    await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    async with httpx.AsyncClient(base_url=procs.api_url, headers=headers, timeout=10) as client, asyncio.timeout(40):

        async def create(key: str) -> httpx.Response:
            return await client.post("/api/customers", json={"name": key}, headers={"Idempotency-Key": key})

        first = [asyncio.create_task(create(key)) for key in ("k-now", "k-later")]
        await _blocked_on_lock(gate.admin, gate.name, 2)
        try:
            await gate.close()  # the locker too: the lock goes with it
            for response in await asyncio.gather(*first):
                _assert_unavailable(response)
            _assert_unavailable(await client.get("/api/customers"))  # the connection was kept
        finally:
            await gate.open()
        response = await create("k-now")
        assert response.status_code == 200, response.text
        assert "idempotent-replayed" not in response.headers

        db = Database(fault_url)
        try:
            deadline = time.monotonic() + 10
            while True:
                async with db.read() as conn:
                    left = await conn.scalar(sa.select(sa.func.count()).where(idempotency_keys.c.key == "k-later"))
                if left == 0:
                    break
                assert time.monotonic() < deadline, "the end of k-later was never recorded"
                await asyncio.sleep(0.1)
        finally:
            await db.dispose()
        response = await create("k-later")
        assert response.status_code == 200, response.text
        replay = await create("k-later")
        assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == response.json()
    await locker.close()
    assert await _counts(fault_url) == (2, 2)  # each key wrote once
    assert not procs.escaped(), procs.escaped()[:5]

"""PostgreSQL's connection pool without a ping per checkout: dead connections are still never
handed to a second transaction (`db/engine.py`, `_check_pooled_connections`)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from paywire.db import engine as engine_module
from paywire.db.engine import Database, is_unavailable

pytestmark = pytest.mark.postgres


async def _backend_pids(db: Database, n: int) -> list[int]:
    """Open `n` pooled connections at once and give them back: their server process ids."""
    conns = [await db.engine.connect() for _ in range(n)]
    pids = [(await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() for conn in conns]
    for conn in conns:
        await conn.close()
    return pids


async def _terminate(pg_url: str, pids: list[int]) -> None:
    admin = Database(pg_url)
    try:
        async with admin.engine.connect() as conn:
            ended = sa.text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid")
            await conn.execute(ended, {"pids": pids})
    finally:
        await admin.dispose()


async def _select_one(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())


async def test_a_connection_that_died_while_idle_is_pinged_and_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_PING_AFTER_IDLE", 0.2)
    db = Database(pg_url, pool_size=3)
    try:
        pids = await _backend_pids(db, 3)
        await _terminate(pg_url, pids)
        await asyncio.sleep(0.3)  # idle past the threshold: each checkout pings first
        for _ in range(6):
            assert await _select_one(db) == 1  # never the dead connection: no error at all
        assert not set(await _backend_pids(db, 3)) & set(pids)
    finally:
        await db.dispose()


async def test_connections_that_died_in_use_fail_once_then_the_pool_renews_them_all(pg_url: str) -> None:
    db = Database(pg_url, pool_size=3)
    try:
        pids = await _backend_pids(db, 3)
        await _terminate(pg_url, pids)  # busy connections (used just now): no ping at checkout
        failures = 0
        for _ in range(6):
            try:
                assert await _select_one(db) == 1
            except Exception as exc:
                assert is_unavailable(exc), exc  # a 503 for the API, never a 500
                failures += 1
        # The first failure has the pool replace all three dead connections, not one at a time.
        assert failures == 1
        assert not set(await _backend_pids(db, 3)) & set(pids)
    finally:
        await db.dispose()


async def test_a_statement_cut_mid_flight_renews_the_whole_pool(pg_url: str) -> None:
    """The server ends the backends while one of them runs a statement: that statement fails
    as an outage, and the pool's other dead connections go with it, before anyone uses them."""
    db = Database(pg_url, pool_size=3)
    try:
        pids = await _backend_pids(db, 3)
        sleeping = await db.engine.connect()  # one of the three, now running a long statement
        sleeping_pid = (await sleeping.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        statement = asyncio.ensure_future(sleeping.execute(sa.text("SELECT pg_sleep(10)")))
        await asyncio.sleep(0.2)
        await _terminate(pg_url, pids)
        with pytest.raises(Exception) as cut:
            await statement
        assert is_unavailable(cut.value) and sleeping_pid in pids
        await sleeping.close()
        for _ in range(6):
            assert await _select_one(db) == 1  # the two idle dead ones were replaced unasked
    finally:
        await db.dispose()

"""`events.log.append` keeps the enabled destinations cached, and stays right when another
process changes them: two processes (this one, and a `python -c` child on the same database)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries
from paywire.events import targets
from paywire.events.log import NewEvent, append

CHILD = """
import asyncio, sys, time
from paywire.db.engine import Database
from paywire.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from paywire.webhooks import endpoints

async def main(url, action, arg):
    db = Database(url)
    async with db.transaction() as tx:
        if action == "create":
            made = await endpoints.create(tx, WebhookEndpointCreate(url="https://example.com/h", enabled_events=[arg]),
                                          livemode=False, now=time.time())
            print(made["id"])
        elif action == "disable":
            await endpoints.update(tx, arg, WebhookEndpointUpdate(status="disabled"), livemode=False, now=time.time())
        elif action == "events":
            await endpoints.update(tx, sys.argv[4], WebhookEndpointUpdate(enabled_events=[arg]),
                                   livemode=False, now=time.time())
    await db.dispose()

asyncio.run(main(*sys.argv[1:4]))
"""


def other_process(url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD, url, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def emit(db: Database, kind: str = "customer.updated") -> list[str]:
    async with db.transaction() as tx:
        [event] = await append(tx, [NewEvent(kind, {"id": "cus_1"})], livemode=False, now=time.time())
    async with db.read() as conn:
        query = sa.select(webhook_deliveries.c.endpoint_id).where(webhook_deliveries.c.event_id == event["id"])
        return sorted((await conn.execute(query)).scalars())


async def test_the_cache_follows_changes_made_by_another_process(db: Database) -> None:
    assert await emit(db) == []
    first = other_process(db.url, "create", "customer.updated")
    assert await emit(db) == [first]
    async with db.read() as conn:
        cached = await targets.enabled(conn, False)
        assert await targets.enabled(conn, False) is cached  # unchanged: the cached list itself
    second = other_process(db.url, "create", "*")
    assert await emit(db) == sorted([first, second])
    other_process(db.url, "disable", first)
    assert await emit(db) == [second]
    other_process(db.url, "events", "invoice.paid", second)
    assert await emit(db) == []
    assert await emit(db, "invoice.paid") == [second]

"""`events.log.append` on PostgreSQL: the event-order lock, the notify and the destinations'
token are one statement before the transaction's first event, and each still does its job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

from paywire.db.dialect import Lock
from paywire.db.engine import Database
from paywire.db.signal import CHANNEL
from paywire.events import targets
from paywire.events.log import NewEvent, append
from tests.conftest import _truncate_pg

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    await _truncate_pg(pg_url)
    database = Database(pg_url)
    async with database.transaction() as tx:  # a token (as `migrate` leaves), so the list is cached
        await targets.bump(tx.conn)
    yield database
    await database.dispose()


def plain_dsn(db: Database) -> str:
    return make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements `db` sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa_event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def emit(db: Database, object_id: str) -> None:
    async with db.transaction() as tx:
        await append(tx, [NewEvent("customer.updated", {"id": object_id})], livemode=False, now=time.time())


async def test_the_first_append_locks_notifies_and_reads_the_token_in_one_statement(db: Database) -> None:
    notified = asyncio.Event()
    listener = await asyncpg.connect(plain_dsn(db))
    await listener.add_listener(CHANNEL, lambda *_: notified.set())
    await emit(db, "cus_0")  # the destinations are cached now
    await asyncio.sleep(0.1)
    notified.clear()
    try:
        with statements(db) as sent:
            async with db.transaction() as tx:
                await append(tx, [NewEvent("customer.updated", {"id": "cus_1"})], livemode=False, now=time.time())
                first = list(sent)
                await append(tx, [NewEvent("customer.updated", {"id": "cus_1"})], livemode=False, now=time.time())
                held = await listener.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    int(Lock.EVENT_ORDER),
                )
                assert held == 1  # the event-order lock, held by this transaction
                assert not notified.is_set()  # a notify goes out at commit
        await asyncio.wait_for(notified.wait(), 5)
    finally:
        await listener.close()
    assert len(first) == 2  # the lock with the notify and the token, then the event
    for name in ("pg_advisory_xact_lock", "pg_notify", "destination_versions"):
        assert name in first[0]
    assert first[1].startswith("INSERT INTO events")
    token_read, insert = sent[2:]  # a second append: only the token (the lock is held)
    assert "destination_versions" in token_read and "pg_advisory_xact_lock" not in token_read
    assert insert.startswith("INSERT INTO events")


async def test_event_writing_transactions_still_wait_for_each_other(db: Database) -> None:
    """The lock still orders the commits: a second append waits for the first transaction."""
    async with db.transaction() as tx:
        await append(tx, [NewEvent("customer.updated", {"id": "cus_1"})], livemode=False, now=time.time())
        other = asyncio.create_task(emit(db, "cus_2"))
        await asyncio.sleep(0.5)
        assert not other.done()  # waiting for the event-order lock
    await asyncio.wait_for(other, 5)

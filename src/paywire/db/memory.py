"""`sqlite:///:memory:`: one private in-memory database for every connection of one `Database`.

A plain `:memory:` URL gives each pooled connection its own empty database (migrations land on
one, queries run on another). SQLite's `memdb` VFS shares a database named `/…` among this
process's connections, with database-level locks: no dirty read and no `SQLITE_LOCKED`, as a
shared-cache database gives, but no WAL either, so a read cannot run beside a write transaction.
`Gate` makes that wait a queue on the event loop rather than SQLite's busy handler, which polls
(1…100 ms sleeps) and so let a read wait out a whole run of back-to-back write transactions (a
test clock's advance). The database lives while one connection is open: `_keep` holds one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL

__all__ = ["Gate", "MemoryDatabase", "is_memory"]

Task = asyncio.Task[Any]


def is_memory(url: URL) -> bool:
    """`sqlite://` and `sqlite:///:memory:` (a file-less SQLite URL)."""
    return url.database in (None, "", ":memory:")


class Gate:
    """Reads share the database, a write transaction has it alone; a read that arrives during a
    write goes in when that write ends, before the next write (reads never wait for reads, so
    a read inside a read, in one task or in tasks it waits for, cannot deadlock).

    A write inside its own task's read would wait for itself: refused at once. (A read inside
    its own task's write is served on the write's connection: see `Database.read`.)"""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.writer: Task | None = None
        self._readers: Counter[Task | None] = Counter()
        self._queued_readers = 0
        self._wakeups: list[asyncio.Future[None]] = []

    def _changed(self) -> None:
        wakeups, self._wakeups = self._wakeups, []
        for wakeup in wakeups:
            if not wakeup.done():
                wakeup.set_result(None)

    async def _until(self, ready: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not ready():
            wakeup = loop.create_future()
            self._wakeups.append(wakeup)
            try:
                # Not `wait_for`: on 3.11 it swallows a cancel that comes with the wake-up, and a
                # stream hub being stopped then ran on, awaited forever.
                async with asyncio.timeout_at(deadline):
                    await wakeup
            except TimeoutError:
                raise RuntimeError(f"memory database: {what} waited {self.timeout:g} s") from None

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self.writer is not None and not self._readers[task]:
            self._queued_readers += 1
            try:
                await self._until(lambda: self.writer is None, "a read")
            finally:
                self._queued_readers -= 1
                self._changed()  # (a write may have been waiting for this queued read)
        self._readers[task] += 1
        try:
            yield
        finally:
            self._readers[task] -= 1
            if not self._readers[task]:
                del self._readers[task]
            self._changed()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._readers[task]:
            raise RuntimeError("memory database: a write transaction inside this task's own read waits for itself")
        await self._until(
            lambda: self.writer is None and not self._readers and not self._queued_readers, "a write transaction"
        )
        self.writer = task
        try:
            yield
        finally:
            self.writer = None
            self._changed()


class MemoryDatabase:
    """The database a memory URL names, kept alive until `close`, and its `Gate`."""

    def __init__(self, timeout: float) -> None:
        self.name = f"/paywire-{uuid.uuid4().hex}"
        self.uri = f"file:{self.name}?vfs=memdb"
        self.gate = Gate(timeout)
        self._keep: sqlite3.Connection | None = sqlite3.connect(self.uri, uri=True, check_same_thread=False)

    def url(self, url: URL) -> URL:
        """`url` (an aiosqlite one) pointing at this database."""
        return url.set(database=f"file:{self.name}", query={"vfs": "memdb", "uri": "true"})

    def close(self) -> None:
        """Drop the database (once the pool's connections are closed too)."""
        keep, self._keep = self._keep, None
        if keep is not None:
            keep.close()

"""Group commit: many callers' small writes in one transaction."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.engine import Database

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Items handed in while a transaction runs are written together in the next one: one commit
    for all of them, each caller awaiting its own result (or the transaction's error)."""

    def __init__(self, db: Database, write: Callable[[AsyncConnection, list[Item]], Awaitable[list[Result]]]) -> None:
        self.db = db
        self.write = write
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, result))
        if self._writer is None or self._writer.done():
            # A context of its own: nothing of the caller's (a request's before-commit hook) leaks into it.
            self._writer = loop.create_task(self._write_waiting(), context=contextvars.Context())
        return await result

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self.db.transaction() as tx:
                    results = await self.write(tx.conn, [item for item, _ in batch])
            except Exception as exc:
                for _, result in batch:
                    if not result.done():
                        result.set_exception(exc)
            else:
                for (_, result), value in zip(batch, results, strict=True):
                    if not result.done():
                        result.set_result(value)

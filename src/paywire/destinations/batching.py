"""Coalescing: the sends that the lanes start in one event-loop turn go out as one batch.

On this kind of host a broker client's cost per command is mostly its socket write (a syscall
that also runs the loopback receiver's side: 60 to 110 µs per XADD on the shared 2-core VM, about
as much as the rest of a Redis send). The dispatcher's lanes of one destination wake together
(their replies arrive in one read), so the commands they issue in the same turn can share one
write and one round trip, while each delivery keeps its own outcome.

`Coalescer.submit` queues an item and awaits its own result. The first item of a turn starts a
task; it runs after every lane that was ready in that turn, takes all the items queued, and
hands them to `flush`, which returns one result per item: a value, or an exception for that
item alone. An exception raised by `flush` itself (the connection failed) is every item's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]) -> None:
        self._flush = flush
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # batches in flight (kept from the GC)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        if not self._queued:
            # Its first step runs once the lanes already woken in this turn have queued theirs.
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._queued.append((item, future))
        return await future

    async def _run(self) -> None:
        batch, self._queued = self._queued, []
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its lane was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Wait for the batches in flight (their lanes are owed an outcome)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

"""`destinations.batching.Coalescer`: the items of one event-loop turn make one batch, each
item gets its own result, a failed batch fails each of its items, and a cancelled item's
result is dropped without harming the others."""

from __future__ import annotations

import asyncio

import pytest

from paywire.destinations.batching import Coalescer


async def test_one_batch_per_turn_and_a_result_or_error_each() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await asyncio.sleep(0)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(5)), return_exceptions=True)
    assert batches == [[0, 1, 2, 3, 4]]
    assert [r if isinstance(r, int) else str(r) for r in results] == [0, "odd 1", 20, "odd 3", 40]
    assert await coalescer.submit(6) == 60  # a later turn: a batch of its own
    assert batches[1:] == [[6]]


async def test_a_failed_batch_fails_every_item_and_a_cancelled_item_is_skipped() -> None:
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        await release.wait()
        if 99 in items:
            raise ConnectionError("gone")
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush)
    failing = [asyncio.ensure_future(coalescer.submit(i)) for i in (99, 1)]
    await asyncio.sleep(0)
    release.set()
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    release.clear()
    kept, cancelled = asyncio.ensure_future(coalescer.submit(2)), asyncio.ensure_future(coalescer.submit(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    assert await kept == 2
    assert cancelled.cancelled()
    await coalescer.close()

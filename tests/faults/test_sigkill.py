"""SIGKILL of `paywire serve` and `paywire worker` at seeded-random moments of a billing stream."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from paywire.db.engine import Database
from tests.faults.harness import Api, Procs, Workload, audit, make_key, seed, wait_settled
from tests.integration.delivery_receiver import Receiver

pytestmark = pytest.mark.postgres

SEED = seed(6)
KILLS = ["serve", "worker", "serve", "worker", "worker"]


async def _chaos(procs: Procs, rng: random.Random, victims: list[str]) -> None:
    """Kill each victim in turn after a random pause, then restart it."""
    for victim in victims:
        await asyncio.sleep(rng.uniform(0.8, 2.0))
        if victim == "serve":
            procs.kill(procs.serve)
            await asyncio.sleep(rng.uniform(0, 0.3))
            await procs.start_serve()
        else:
            procs.kill(procs.workers[0])
            await asyncio.sleep(rng.uniform(0, 0.3))
            procs.start_worker(0)


async def test_sigkill_serve_and_worker_lose_nothing(fault_url: str, procs: Procs, receiver: Receiver) -> None:
    rng = random.Random(SEED)
    receiver.delay = 0.01
    headers = {"Authorization": f"Bearer {await make_key(fault_url)}"}
    await procs.start_serve()
    procs.start_worker()
    db = Database(fault_url)
    async with httpx.AsyncClient(base_url=procs.api_url, headers=headers, timeout=10) as client:
        api = Api(client)
        work = Workload(api, rng)
        await work.setup(receiver)
        for _ in range(4):
            await work.subscribe()
        chaos = asyncio.create_task(_chaos(procs, random.Random(SEED + 1), KILLS))
        try:
            async with asyncio.timeout(60):
                while not chaos.done():
                    await work.step()
                await chaos
                stuck = len(work.stuck)
                await work.unstick(db)
                for clock_id in list(work.clocks):  # one more month everywhere, on a healthy server
                    await work.advance(clock_id)
                await wait_settled(db, receiver)
            counts = await audit(db, receiver)
        finally:
            chaos.cancel()
            await db.dispose()
    assert not api.crashes, api.crashes
    assert api.dropped > 0, "no request was cut off: the kills missed the workload"
    assert counts["trial_notices"] > 0 and counts["mints"] > 0 and counts["renewals"] > 0
    print(f"\nsigkill: {counts} ops={dict(work.ops)} stuck_clocks={stuck} dropped={api.dropped}")

"""Two `paywire worker` processes (each a dispatcher and a billing scheduler) and an API process
on one PostgreSQL database, under concurrent billing load.

Extends `tests/integration/test_delivery_workers.py` (which races two workers on a seeded
backlog) with real billing traffic: renewals, NFT mints raced by the API and both schedulers,
wall-clock trial notices raced by both schedulers, and two advances of one clock at once.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from paywire.db.engine import Database
from tests.faults.harness import DAY, Api, Procs, Workload, audit, make_key, seed, wait_settled
from tests.integration.delivery_receiver import Receiver

pytestmark = pytest.mark.postgres

SEED = seed(8)
DRIVERS = 4
STEPS = 25


async def _race_advance(work: Workload, clock_id: str) -> list[int]:
    """Advance one clock from two clients at once: one runs the jobs, the other may get 409."""
    to = work.clocks[clock_id] + 32 * DAY
    body = {"frozen_time": to}
    path = f"/api/test-clocks/{clock_id}/advance"
    answers = await asyncio.gather(work.api.once("POST", path, body), work.api.once("POST", path, body))
    for answer in answers:
        assert answer.status_code == 200 or answer.json()["error"]["code"] == "test_clock_advancing", answer.text
    await work.api.retry("POST", path, body)  # whichever lost: the clock ends at `to`, every job run
    work.clocks[clock_id] = to
    return [a.status_code for a in answers]


async def _drive(work: Workload, steps: int) -> None:
    for _ in range(steps):
        await work.step()
        if work.clocks and work.rng.random() < 0.3:
            await _race_advance(work, work.rng.choice(list(work.clocks)))


async def test_two_workers_and_schedulers_never_double_send_or_charge(
    fault_url: str, procs: Procs, receiver: Receiver
) -> None:
    receiver.delay = 0.03  # deliveries stay in flight: leases and claims overlap between workers
    headers = {"Authorization": f"Bearer {await make_key(fault_url)}"}
    await procs.start_serve()
    procs.start_worker()
    procs.start_worker()
    db = Database(fault_url)
    limits = httpx.Limits(max_connections=DRIVERS * 2)
    async with httpx.AsyncClient(base_url=procs.api_url, headers=headers, timeout=30, limits=limits) as client:
        api = Api(client)
        works = [Workload(api, random.Random(SEED + i)) for i in range(DRIVERS)]
        await works[0].setup(receiver)
        for w in works[1:]:
            w.plan, w.item = works[0].plan, works[0].item
        try:
            async with asyncio.timeout(90):
                await asyncio.gather(*(w.subscribe() for w in works))
                await asyncio.gather(*(_drive(w, STEPS) for w in works))
                await wait_settled(db, receiver)
            counts = await audit(db, receiver)
        finally:
            await db.dispose()
    assert not api.crashes and not api.unavailable and api.dropped == 0
    assert max(receiver.max_in_flight.values()) == 1  # never one delivery twice at once
    assert counts["duplicates"] == 0  # no lease lapsed, so each event was sent exactly once
    assert counts["trial_notices"] > 0 and counts["mints"] > 0 and counts["renewals"] > 0
    print(f"\ntwo workers: {counts} statuses={dict(api.statuses)}")

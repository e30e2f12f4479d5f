"""PostgreSQL connections terminated again and again mid-run (`pg_terminate_backend`).

The PostgreSQL server is shared with other tests, so it is never restarted here: terminating
every backend of this test's own database is what a restart does to Paywire's connections.
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from paywire.db.engine import Database
from tests.faults.harness import Api, Procs, Workload, audit, make_key, seed, wait_settled
from tests.integration.delivery_receiver import Receiver

pytestmark = pytest.mark.postgres

SEED = seed(7)
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


async def _terminator(url: str, rng: random.Random, rounds: int) -> int:
    """Cut every connection to the test database `rounds` times; returns how many were cut."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = make_url(url).database
    conn = await asyncpg.connect(dsn)
    cut = 0
    try:
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(0.3, 0.9))
            cut += int(await conn.fetchval(TERMINATE, name))
    finally:
        await conn.close()
    return cut


async def test_terminated_connections_fail_cleanly_and_lose_nothing(
    fault_url: str, procs: Procs, receiver: Receiver
) -> None:
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
        await procs.wait_workers_started()
        cutter = asyncio.create_task(_terminator(fault_url, random.Random(SEED + 1), 20))
        try:
            async with asyncio.timeout(60):
                while not cutter.done():
                    await work.step()
                cut = await cutter
                for clock_id in list(work.clocks):  # the workers and the API carry on by themselves
                    await work.advance(clock_id)
                await wait_settled(db, receiver)
            counts = await audit(db, receiver)
        finally:
            cutter.cancel()
            await db.dispose()
    # Every failure was a clean, retryable 503; the processes never died.
    assert not api.crashes, api.crashes
    assert api.dropped == 0 and not work.stuck
    assert procs.serve is not None and procs.serve.poll() is None
    assert all(w is not None and w.poll() is None for w in procs.workers)
    for response in api.unavailable:
        error = response.json()["error"]
        assert error["code"] == "database_unavailable" and response.headers["retry-after"], response.text
    assert cut > 20 and api.unavailable, "the terminations never hit a request"
    print(f"\npg_terminate: {counts} ops={dict(work.ops)} cut={cut} 503s={len(api.unavailable)}")

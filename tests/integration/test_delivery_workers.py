"""At least once across crashes, and never twice at once: real `paywire worker` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries
from paywire.events.log import NewEvent, append
from paywire.schemas import WebhookEndpointCreate
from paywire.webhooks import endpoints
from tests.integration.delivery_receiver import Receiver, until

WORKER_ENV = {
    "PAYWIRE_WEBHOOK_LEASE": "2",  # a killed worker's claims come back after 2 s
    "PAYWIRE_WEBHOOK_POLL_INTERVAL": "0.1",
    "PAYWIRE_WEBHOOK_TIMEOUT": "5",
    "PAYWIRE_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2",
}


class Workers:
    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "paywire.cli.main", "worker", "--database-url", self.url, "--concurrency", "50"],
            env={**os.environ, **WORKER_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(database_url, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def _seed(url: str, receiver: Receiver, paths: list[str], n: int) -> tuple[Database, list[str]]:
    """Endpoints for `paths` and `n` events, written through the engine's own `append`."""
    db = Database(url)
    await migrate.upgrade(db)
    now = time.time()
    async with db.transaction() as tx:
        for path in paths:
            await endpoints.create(
                tx, WebhookEndpointCreate(url=receiver.at(path), enabled_events=["*"]), livemode=False, now=now
            )
    ids: list[str] = []
    for start in range(0, n, 50):
        async with db.transaction() as tx:
            batch = [NewEvent("customer.created", {"id": f"cus_{i}"}) for i in range(start, min(n, start + 50))]
            ids += [e["id"] for e in await append(tx, batch, livemode=False, now=time.time())]
    return db, ids


async def _all_succeeded(db: Database) -> bool:
    async with db.read() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).where(webhook_deliveries.c.status != "succeeded"))
    return left == 0


async def test_sigkill_mid_batch_loses_nothing(database_url: str, workers: Workers, receiver: Receiver) -> None:
    receiver.delay = 0.05  # requests stay in flight long enough to be cut off by the kill
    db, ids = await _seed(database_url, receiver, ["/ok"], 200)
    try:
        first = workers.start()
        await until(lambda: len(receiver.received) >= 40, timeout=20)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        assert first.returncode == -signal.SIGKILL
        got_before_kill = len(receiver.received)
        assert got_before_kill < len(ids), "the kill came too late to be mid-batch"
        workers.start()
        await until(lambda: {r.webhook_id for r in receiver.received} >= set(ids), timeout=30)
        deadline = time.monotonic() + 10
        while not await _all_succeeded(db):
            assert time.monotonic() < deadline, "deliveries left unfinished"
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()
    received = Counter(r.webhook_id for r in receiver.received)
    assert set(received) == set(ids)  # nothing lost, nothing invented
    assert all(r.verified == {} or all(r.verified.values()) for r in receiver.received)


@pytest.mark.postgres
async def test_two_workers_never_send_one_delivery_concurrently(
    database_url: str, workers: Workers, receiver: Receiver
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers on one database is the PostgreSQL deployment")
    receiver.delay = 0.02
    paths = ["/ok", "/flaky"]
    receiver.failures["/flaky"] = 30  # some retries in the mix
    db, ids = await _seed(database_url, receiver, paths, 300)
    try:
        workers.start()
        workers.start()
        expected = {f"{p} {i}" for p in paths for i in ids}
        await until(lambda: {f"{r.path} {r.webhook_id}" for r in receiver.received} >= expected, timeout=40)
        deadline = time.monotonic() + 10
        while not await _all_succeeded(db):
            assert time.monotonic() < deadline, "deliveries left unfinished"
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()
    assert max(receiver.max_in_flight.values()) == 1  # never the same delivery twice at once
    ok = Counter(r.webhook_id for r in receiver.on("/ok"))
    assert set(ok) == set(ids) and max(ok.values()) == 1  # each exactly once: no lease ever lapsed

"""The PostgreSQL server itself restarted (`pg_ctlcluster … restart`) under a steady load.

This restarts the whole PostgreSQL server on 127.0.0.1:5432, which every test on this machine
shares: any other test using it at that moment fails. So it is marked `pg_restart`; run it on
its own and sparingly (`pytest -m pg_restart tests/faults`), and deselect it from other runs
(`-m "not pg_restart"`). It needs root and `pg_ctlcluster` (as CI has), and always leaves the
server running (a `finally` starts it if the restart did not).

A real `paywire serve --no-worker` on PostgreSQL takes a mix of requests over keep-alive
connections: POST /api/customers with an Idempotency-Key (retried with the same key until it
succeeds, as a client does), POST /api/customers without one, GET lists. PostgreSQL is
restarted twice meanwhile. Every answer must be a 2xx or a 503 with `Retry-After`: never a 500,
never a dropped or reset connection, never a 409 for a key whose first request had ended; every
created customer has its one `customer.created` event, no key wrote twice, and the server
serves again after each restart without being restarted itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import customers, events
from tests.faults.harness import Procs, make_key

pytestmark = [pytest.mark.postgres, pytest.mark.pg_restart]


def _cluster() -> list[str]:
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster")
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        pytest.skip("no PostgreSQL cluster in /etc/postgresql")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0


async def _wait_ready(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(_ready):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def _restart(cluster: list[str]) -> float:
    """Restart PostgreSQL; the seconds until it accepts connections again."""
    started = time.monotonic()
    await asyncio.to_thread(subprocess.run, [*cluster, "restart"], check=True, capture_output=True, timeout=60)
    assert await _wait_ready(30), "PostgreSQL did not come back"
    return time.monotonic() - started


@dataclass
class Load:
    client: httpx.AsyncClient
    statuses: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # anything but a 2xx or a 503 with Retry-After
    created: dict[str, str] = field(default_factory=dict)  # customer id -> how it was made
    keyed: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> customer id
    last_ok: float = 0.0

    async def call(self, what: str, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        try:
            response = await self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            self.bad.append(f"{what}: {type(exc).__name__} {exc}")
            return None
        self.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code == 503 and response.headers.get("retry-after"):
            assert response.json()["error"]["code"].startswith("database_"), response.text
            return None
        if not 200 <= response.status_code < 300:
            self.bad.append(f"{what}: {response.status_code} {response.text[:300]}")
            return None
        self.last_ok = time.monotonic()
        return response

    async def run(self, worker: int, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            kind = n % 3
            if kind == 0:
                await self.call("list", "GET", "/api/customers", params={"size": 5})
            elif kind == 1:
                response = await self.call("create", "POST", "/api/customers", json={"name": f"w{worker}-{n}"})
                if response is not None:
                    self.created[response.json()["id"]] = "plain"
            else:
                key = f"w{worker}-{n}"
                for _ in range(200):  # the same key until it succeeds, as a client retries
                    response = await self.call(
                        "keyed", "POST", "/api/customers", json={"name": key}, headers={"Idempotency-Key": key}
                    )
                    if response is not None:
                        self.created[response.json()["id"]] = "keyed"
                        self.keyed[key] = response.json()["id"]
                        break
                    if self.bad:
                        return
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.02)


async def test_postgres_restart_answers_503_never_500_and_recovers(fault_url: str, procs: Procs) -> None:
    cluster = _cluster()
    headers = {"Authorization": f"Bearer {await make_key(fault_url)}"}
    await procs.start_serve()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    restarts: list[float] = []
    async with httpx.AsyncClient(base_url=procs.api_url, headers=headers, timeout=15, limits=limits) as client:
        load = Load(client)
        stop = asyncio.Event()
        workers = [asyncio.create_task(load.run(i, stop)) for i in range(4)]
        try:
            async with asyncio.timeout(50):
                for _ in range(2):
                    await asyncio.sleep(2)
                    restarts.append(await _restart(cluster))
                    # Recovered without restarting paywire: requests succeed again within seconds.
                    back = time.monotonic()
                    while load.last_ok < back:
                        assert not load.bad, load.bad[:10]
                        assert time.monotonic() - back < 15, f"no success after the restart: {load.statuses}"
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1)
                stop.set()
                await asyncio.gather(*workers)
        finally:
            stop.set()
            for task in workers:
                task.cancel()
            if not await _wait_ready(5):  # never leave the shared server down
                await asyncio.to_thread(subprocess.run, [*cluster, "start"], check=False, timeout=60)
                await _wait_ready(30)

    assert not load.bad, load.bad[:10]
    assert procs.serve is not None and procs.serve.poll() is None
    assert not procs.escaped(), procs.escaped()[:5]
    unavailable = sum(n for k, n in load.statuses.items() if k.endswith(" 503"))
    assert unavailable > 0, f"the restarts never hit a request: {load.statuses}"

    db = Database(fault_url)
    try:
        async with db.read() as conn:
            announced = Counter(
                (await conn.execute(sa.select(events.c.object_id).where(events.c.type == "customer.created"))).scalars()
            )
            names = Counter((await conn.execute(sa.select(customers.c.name))).scalars())
    finally:
        await db.dispose()
    assert all(announced[c] == 1 for c in load.created), "a created customer without its event"
    assert all(n == 1 for n in announced.values()), "an event announced twice"
    assert all(names[key] == 1 for key in load.keyed), "an Idempotency-Key wrote twice"
    print(f"\npg restart: restarts took {[round(r, 1) for r in restarts]} s; {dict(load.statuses)}")

"""Dashboard pages on a big event log: 1,000,000 events and 3,000,000 attempts by default.

    .venv/bin/python bench/dashboard.py [--events 1000000] [--database sqlite|postgres|both] [--requests 200]

Fills a fresh database with bulk inserts (PostgreSQL: one `INSERT … SELECT FROM unnest(…)` per
batch; SQLite: executemany): 10 endpoints, `--events` events over the last 30 days with types
from the catalogue, one delivery per event and three attempts per delivery (two failed, one
succeeded), then the attempt rollups rebuilt from them (`rollups.rebuild`, as the 0011 migration
does for stored attempts; live, `attempts.record` keeps them up). Then, in-process (the ASGI
app driven by httpx, no network: the time is the server's), a signed-in operator requests each
page `--requests` times and the p50/p99 latency is printed per page and database. Target: p99 under 100 ms.

Pages: the newest events page, a deep page (`?before=` the middle of the log), a prefix filter
(`?type=customer.*`), one event's page (random events, with their deliveries and attempts), and
the endpoints page (health over 24 h for each endpoint) and the overview (attempts per hour),
each with its p50 as a multiple of a baseline page's (the event type catalogue: the session
and the framework, no log) and the load average when it finished;
then the API's lists, which answer a total `count` (`/api/events`, with `?type=customer.*`, and
`/api/webhook-attempts`, all and for one endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from paywire import keys
from paywire.app import PaywireApp
from paywire.db.dialect import insert_rows
from paywire.db.engine import Database
from paywire.db.schema import events, webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.errors import InvalidRequest
from paywire.events import catalogue, targets
from paywire.ops import operators
from paywire.webhooks import rollups

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 20_000
ENDPOINTS = 10
DAYS = 30
TYPES = list(catalogue.EVENT_TYPES.values())


async def fill(db: Database, n: int) -> float:
    started = time.monotonic()
    now = time.time()
    span = DAYS * 86_400
    endpoint_ids = [f"we_bench{i:02d}" for i in range(ENDPOINTS)]
    async with db.transaction() as tx:
        await tx.conn.execute(
            webhook_endpoints.insert(),
            [
                {
                    "id": endpoint_id, "livemode": False, "url": f"https://hooks.example.com/{i}",
                    "enabled_events": ["*"], "status": "enabled", "description": f"bench {i}", "metadata": {},
                    "api_version": "2026-11-26", "created_via": "api", "secret": "whsec_" + "A" * 32,
                    "previous_secrets": [], "disabled_reason": None, "last_success": now, "failing_since": None,
                    "created": int(now - span), "updated": int(now),
                }
                for i, endpoint_id in enumerate(endpoint_ids)
            ],
        )  # fmt: skip
        await targets.bump(tx.conn)  # written past the engine: tell `append` the list changed
    seq = 0
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        event_rows, delivery_rows, attempt_rows = [], [], []
        for i in range(first, first + count):
            kind = TYPES[i % len(TYPES)]
            created = now - span + span * i / n
            event_id = f"evt_bench{i:012d}"
            object_id = f"obj_{i % (n // 10 + 1):010d}"
            endpoint_id = endpoint_ids[i % ENDPOINTS]
            seq += 1
            event_rows.append({
                "seq": seq, "id": event_id, "livemode": False, "type": kind.name, "api_version": "2026-11-26",
                "object_type": kind.object_type, "object_id": object_id,
                "data": {"object": {"id": object_id, "object": kind.object_type, "n": i}, "previous_attributes": {}},
                "request_id": None, "idempotency_key": None, "metadata": {}, "created": int(created),
            })  # fmt: skip
            delivery_rows.append({
                "seq": seq, "event_id": event_id, "endpoint_id": endpoint_id, "livemode": False,
                "status": "succeeded", "attempts": 3, "next_attempt": created, "lease_until": None,
                "lease_owner": None, "last_error": None, "created": int(created), "updated": int(created),
            })  # fmt: skip
            for k in range(3):
                ok = k == 2
                attempt_rows.append({
                    "id": f"wha_b{i:012d}{k}", "livemode": False, "delivery_seq": seq, "event_id": event_id,
                    "endpoint_id": endpoint_id, "status": "succeeded" if ok else "failed",
                    "response_status": 200 if ok else 500, "response_body": "ok" if ok else "upstream error",
                    "retry_count": k, "duration_ms": 20 + (i * 7 + k * 13) % 180,
                    "error": None if ok else "HTTP 500", "error_type": None if ok else "http_status",
                    "next_retry": None if ok else created + 5 * (k + 1), "created": created + 5 * k,
                })  # fmt: skip
        async with db.transaction() as tx:
            await tx.conn.execute(events.insert(), event_rows)  # JSON columns: executemany
            await insert_rows(tx.conn, webhook_deliveries, delivery_rows)
            await insert_rows(tx.conn, webhook_attempts, attempt_rows)
        done = first + count
        if done % 200_000 == 0 or done == n:
            print(f"  {done:,} events, {3 * done:,} attempts ({time.monotonic() - started:.0f} s)", flush=True)
    async with db.transaction() as tx:  # the rollups `attempts.record` keeps, for the bulk-loaded attempts
        await rollups.rebuild(tx.conn)
    print(f"  attempt rollups rebuilt ({time.monotonic() - started:.0f} s)", flush=True)
    if db.is_postgres:
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('events', 'seq'), :s)"), {"s": seq})
            await conn.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'seq'), :s)"), {"s": seq}
            )
            await conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        async with db.transaction() as tx:
            await tx.conn.execute(sa.text("ANALYZE"))
    return time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, n: int, requests: int) -> dict[str, tuple[float, float, float]]:
    app = PaywireApp(url, run_worker=False)
    await app.start()
    try:
        with contextlib.suppress(InvalidRequest):  # a kept database already has it
            async with app.db.transaction() as tx:
                await operators.create_operator(tx, "bench@example.com", "bench-password", now=time.time())
        gc.collect()
        gc.freeze()  # as `paywire serve` does once started (start-up objects out of the collector's way)
        transport = httpx.ASGITransport(app=app.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            page = await client.get("/dashboard/sign-in")
            token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form = {"csrf_token": token, "email": "bench@example.com", "password": "bench-password"}
            signed = await client.post("/dashboard/sign-in", data=form)
            assert signed.status_code == 303, signed.text
            rng = random.Random(1)
            pages: dict[str, Any] = {
                # The baseline: a page that reads no log (the session, then the fixed catalogue),
                # so `x base` is a page's cost over the framework's, whatever the machine's load.
                "baseline (event types)": lambda: "/dashboard/event-types",
                "events (newest)": lambda: "/dashboard/events",
                "events (deep page)": lambda: f"/dashboard/events?before={n // 2}",
                "events (type customer.*)": lambda: "/dashboard/events?type=customer.%2A",
                "event": lambda: f"/dashboard/events/evt_bench{rng.randrange(n):012d}",
                "endpoints": lambda: "/dashboard/endpoints",
                "overview": lambda: "/dashboard/",
                # The API's lists (page/size, with the total `count`), signed with a secret key.
                "api: events": lambda: "/api/events",
                "api: events customer.*": lambda: "/api/events?type=customer.%2A",
                "api: attempts": lambda: "/api/webhook-attempts",
                "api: attempts of one endpoint": lambda: "/api/webhook-attempts?webhook_endpoint_id=we_bench03",
            }
            async with app.db.transaction() as tx:
                api_key = await keys.create_key(tx.conn, livemode=False, now=time.time())
            signed_api = {"Authorization": f"Bearer {api_key}"}
            results = {}
            for name, path in pages.items():
                headers = signed_api if name.startswith("api:") else None
                for _ in range(5):  # warm the caches
                    assert (await client.get(path(), headers=headers)).status_code == 200
                times = []
                for _ in range(requests):
                    target = path()
                    started = time.perf_counter()
                    response = await client.get(target, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (target, response.status_code)
                # The 1-minute load average as the page finished: p99 on shared cores is mostly it.
                results[name] = (statistics.median(times), percentile(times, 0.99), os.getloadavg()[0])
            return results
    finally:
        await app.stop()


async def count_events(url: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0)
    finally:
        await db.dispose()


async def run(
    backend: str, n: int, requests: int, sqlite_file: str | None = None, pg_database: str | None = None
) -> None:
    if backend == "sqlite":
        path = Path(sqlite_file) if sqlite_file else Path(tempfile.mkdtemp(prefix="paywire-bench-")) / "dashboard.db"
        url = f"sqlite:///{path}"
    else:
        import asyncpg

        name = pg_database or f"paywire_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        setup = PaywireApp(url, run_worker=False)
        await setup.start()  # migrates
        await setup.stop()
        existing = await count_events(url)
        if existing:  # a kept database (--sqlite-file, --pg-database): measure it again
            n = existing
            print(f"{backend}: reusing {n:,} events", flush=True)
        else:
            db = Database(url)
            print(f"{backend}: filling {n:,} events and {3 * n:,} attempts…", flush=True)
            took = await fill(db, n)
            await db.dispose()
            print(f"{backend}: filled in {took:.0f} s; {requests} requests per page", flush=True)
        results = await measure(url, n, requests)
        base = results["baseline (event types)"][0]
        for page, (p50, p99, load) in results.items():
            flag = "ok" if p99 < 100 else "OVER 100 ms"
            print(
                f"  {backend:8} {page:30} p50 {p50:7.1f} ms ({p50 / base:4.1f} x base)   p99 {p99:7.1f} ms   "
                f"{flag:11}  load {load:.2f}",
                flush=True,
            )
    finally:
        if backend == "postgres" and not pg_database:
            import asyncpg

            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sqlite-file", help="keep the SQLite database here; an existing one is measured again")
    parser.add_argument("--pg-database", help="keep this PostgreSQL database; a filled one is measured again")
    args = parser.parse_args()
    for backend in ("sqlite", "postgres") if args.database == "both" else (args.database,):
        asyncio.run(run(backend, args.events, args.requests, args.sqlite_file, args.pg_database))


if __name__ == "__main__":
    main()

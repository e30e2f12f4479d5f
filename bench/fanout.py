"""Fan-out benchmark: one event to many endpoints vs many events to one endpoint, same run.

    .venv/bin/python bench/fanout.py [--endpoints 10000] [--events 100] [--db sqlite|postgres|both]

One dispatcher in this process drains a backlog; a receiver process (one local aiohttp server,
every endpoint a distinct path on it) verifies every signature and timestamps every receipt.
Measured per database, in one run:

  (a) one event to N endpoints (all `["*"]`);
  (b) N events to one endpoint, the same number of deliveries;
  (c) N/10 endpoints x E events, vs (d) N/10 x E events to one endpoint (when --events > 0);
  (e) the CPU an event-writing transaction costs with N enabled endpoints none of which takes
      its type, vs with no endpoints (the N x M cost of matching every write to every endpoint).

Endpoints are created by direct inserts (the API takes about 6 ms each). Throughput is counted
at the receiver, first receipt to last; the dispatcher's claim turns are printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_attempts, webhook_endpoints
from paywire.events import targets
from paywire.events.log import API_VERSION, NewEvent, append
from paywire.ids import new_id
from paywire.webhooks import verify
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from paywire.webhooks.signing import generate_secret

sys.path.insert(0, str(Path(__file__).parent))  # the delivery benchmark's receiver client
from delivery import ReceiverClient
from scratch_database import create_pg_database, drop_pg_database

HOST = "127.0.0.1"
SECRET = generate_secret()


def run_receiver(port: int, secret: str) -> None:
    state: dict[str, Any] = {"count": 0, "keys": set(), "bad": 0, "dupes": 0, "first": 0.0, "last": 0.0}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify(body, request.headers, secret)
        except Exception:
            state["bad"] += 1
            return web.Response(status=400)
        key = (request.match_info["n"], event.id)
        if key in state["keys"]:
            state["dupes"] += 1
        else:
            state["keys"].add(key)
            state["count"] += 1
        now = time.time()
        state["first"] = state["first"] or now
        state["last"] = now
        return web.Response(text="ok")

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({k: state[k] for k in ("count", "bad", "dupes", "first", "last")})

    async def reset(_request: web.Request) -> web.Response:
        state.update(count=0, keys=set(), bad=0, dupes=0, first=0.0, last=0.0)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None, handler_cancellation=True)


async def create_endpoints(db: Database, receiver_url: str, n: int, enabled_events: tuple[str, ...] = ("*",)) -> None:
    now = int(time.time())
    rows: list[dict[str, object]] = [
        {
            "id": new_id("we"),
            "livemode": False,
            "url": f"{receiver_url}/hook/{i}",
            "enabled_events": list(enabled_events),
            "status": "enabled",
            "description": None,
            "metadata": {},
            "api_version": API_VERSION,
            "created_via": "api",
            "secret": SECRET,
            "previous_secrets": [],
            "created": now,
            "updated": now,
        }
        for i in range(n)
    ]
    async with db.transaction() as tx:
        for start in range(0, n, 2000):
            await tx.conn.execute(webhook_endpoints.insert(), rows[start : start + 2000])
        await targets.bump(tx.conn)  # written past the engine: tell `append` the list changed


async def append_events(db: Database, n: int, batch: int = 200) -> None:
    for start in range(0, n, batch):
        async with db.transaction() as tx:
            new = [NewEvent("customer.created", {"id": f"cus_{i}"}) for i in range(start, min(n, start + batch))]
            await append(tx, new, livemode=False, now=time.time())


async def recorded(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(webhook_attempts)) or 0)


async def run(
    receiver: ReceiverClient, url: str, endpoint_count: int, event_count: int, timeout: float
) -> tuple[float, int, int, float]:
    """Deliveries per second, received, claim turns, seconds to set up the endpoints."""
    await receiver.reset()
    db = Database(url)
    await migrate.upgrade(db)
    started = time.monotonic()
    await create_endpoints(db, receiver.url, endpoint_count)
    setup = time.monotonic() - started
    await append_events(db, event_count)
    expected = endpoint_count * event_count
    dispatcher = Dispatcher(db, DeliveryConfig())
    await dispatcher.start()
    try:
        stats = await receiver.wait_for(expected, timeout)
        deadline = time.monotonic() + 30
        while stats["count"] == expected and await recorded(db) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        dispatcher.config.shutdown_grace = 0
        await dispatcher.stop()
        await db.dispose()
    assert stats["bad"] == 0, stats
    span = stats["last"] - stats["first"]
    per_second = (stats["count"] - 1) / span if span > 0 else 0.0
    return per_second, stats["count"], dispatcher._claims, setup


async def write_cost(receiver: ReceiverClient, make_url: Any, endpoint_count: int, writes: int = 300) -> float:
    """CPU ms per event-writing transaction (one `customer.created` each) with `endpoint_count`
    enabled endpoints, none of which takes that type: what every API write pays for them."""
    url, cleanup = await make_url()
    db = Database(url)
    try:
        await migrate.upgrade(db)
        await create_endpoints(db, receiver.url, endpoint_count, ("invoice.paid",))
        await append_events(db, 10, batch=1)  # warm: the destination list read and cached
        started = time.process_time()
        await append_events(db, writes, batch=1)
        return (time.process_time() - started) * 1000 / writes
    finally:
        await db.dispose()
        await cleanup()


async def database_runs(receiver: ReceiverClient, name: str, make_url: Any, args: argparse.Namespace) -> None:
    n = args.endpoints
    cases = [(f"(a) 1 event x {n} endpoints", n, 1), (f"(b) {n} events x 1 endpoint", 1, n)]
    if args.events:
        m = max(1, n // 10)
        cases += [
            (f"(c) {args.events} events x {m} endpoints", m, args.events),
            (f"(d) {m * args.events} events x 1 endpoint", 1, m * args.events),
        ]
    rates: list[float] = []
    for label, endpoint_count, event_count in cases:
        url, cleanup = await make_url()
        try:
            per_second, got, claims, setup = await run(receiver, url, endpoint_count, event_count, args.timeout)
        finally:
            await cleanup()
        rates.append(per_second)
        expected = endpoint_count * event_count
        note = "" if got == expected else f"  ONLY {got} of {expected} in {args.timeout:.0f} s"
        print(
            f"{name:10} {label:34} {per_second:8.0f} deliveries/s  {claims:6d} claim turns"
            f"  (endpoints inserted in {setup:.2f} s){note}",
            flush=True,
        )
    print(f"{name:10} ratio a/b = {rates[0] / rates[1]:.2f}" if rates[1] else "", flush=True)
    if args.events:
        print(f"{name:10} ratio c/d = {rates[2] / rates[3]:.2f}" if rates[3] else "", flush=True)
    many, none = await write_cost(receiver, make_url, n), await write_cost(receiver, make_url, 0)
    print(
        f"{name:10} (e) CPU per event write with {n} endpoints not taking it {many:.2f} ms,"
        f" with none {none:.2f} ms: ratio {many / none:.2f}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="paywire-fanout-") as tmp:
        workdir = Path(tmp)
        receiver_proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(args.port), "--secret", SECRET])
        receiver = ReceiverClient(f"http://{HOST}:{args.port}")
        try:
            for _ in range(100):
                try:
                    await receiver.stats()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

            async def sqlite_url() -> tuple[str, Any]:
                async def nothing() -> None:
                    pass

                return f"sqlite:///{workdir / f'f{uuid.uuid4().hex[:6]}.db'}", nothing

            async def postgres_url() -> tuple[str, Any]:
                url, name = await create_pg_database(args.pg, "paywire_fanout")

                async def drop() -> None:
                    await drop_pg_database(args.pg, name)

                return url, drop

            if args.db in ("sqlite", "both"):
                await database_runs(receiver, "SQLite", sqlite_url, args)
            if args.db in ("postgres", "both"):
                await database_runs(receiver, "PostgreSQL", postgres_url, args)
        finally:
            await receiver.session.close()
            receiver_proc.terminate()
            receiver_proc.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=10000, help="endpoints in (a), events in (b)")
    parser.add_argument("--events", type=int, default=100, help="events per endpoint in (c); 0 skips (c) and (d)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds each run may take")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own databases from",
    )
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver, args.secret)
    else:
        asyncio.run(main(args))

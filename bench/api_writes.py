"""API write throughput: `paywire serve --no-worker` vs a bare FastAPI + SQLAlchemy app, same run.

    .venv/bin/python bench/api_writes.py [--seconds 10] [--clients 16] [--db sqlite|postgres|both]
        [--route customers|subscriptions|both] [--customers 100]

Per database kind, two migrated scratch databases: one served by `paywire serve --no-worker` (a
real uvicorn process), one by bench/bare_api.py (FastAPI + SQLAlchemy doing the same reads and
inserts in one transaction). `--clients` aiohttp clients POST back to back for `--seconds`
against each: Paywire without, then with, an `Idempotency-Key` (a fresh key per request), and
the bare app. Printed per route: req/s, p50, p99, and Paywire's ratio to the bare app, and the
server's CPU time per request (from /proc, its own process only: on a shared machine a steadier
figure than the rate). Issue 17's target: ratio >= 0.8 both ways, p99 < 50 ms at 16 clients.

Routes: POST /api/customers (the customer row and its event row). POST /api/subscriptions: before
the timed phases a product, a monthly price with a 14-day trial and `--customers` customers are
made through Paywire's API, and the same rows copied into the bare app's database; each request
subscribes the next customer (round robin) to that price, so it starts in its trial and nothing
is charged: the subscription row, its two jobs and its two events. No webhook endpoint is
enabled in either database: neither server writes deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import sqlalchemy as sa
from scratch_database import scratch_database  # bench/, beside this script

from paywire import keys
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import customers, prices, products
from paywire.secrets_at_rest import generate_key

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent


async def migrated(db_url: str, *, with_key: bool) -> str:
    db = Database(db_url)
    await migrate.upgrade(db)
    key = ""
    if with_key:
        async with db.transaction() as tx:
            key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    await db.dispose()
    return key


class Route(NamedTuple):
    path: str
    body: Callable[[], dict[str, Any]]  # the next request's body


def customer_route() -> Route:
    numbers = count()
    return Route("/api/customers", lambda: {"name": f"b{next(numbers)}"})


def subscription_route(price_id: str, customer_ids: list[str]) -> Route:
    """Each request subscribes the next customer, round robin, to the trial price."""
    turn = count()
    return Route(
        "/api/subscriptions",
        lambda: {"customer_id": customer_ids[next(turn) % len(customer_ids)], "items": [{"price_id": price_id}]},
    )


class Seed(NamedTuple):
    product_id: str
    price_id: str
    customer_ids: list[str]


async def seed(url: str, key: str, customers_wanted: int) -> Seed:
    """A product, a monthly price with a trial and customers, made through Paywire's API."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:

        async def post(path: str, body: dict[str, Any]) -> str:
            async with session.post(f"{url}{path}", json=body) as r:
                assert r.status == 200, (r.status, await r.text())
                return str((await r.json())["id"])

        product_id = await post("/api/products", {"name": "bench plan"})
        price_id = await post(
            "/api/prices",
            {"product_id": product_id, "unit_amount": "9.99", "currency": "usd",
             "recurring": {"interval": "month"}, "trial_period_days": 14},
        )  # fmt: skip
        customer_ids = [await post("/api/customers", {"name": f"s{n}"}) for n in range(customers_wanted)]
    return Seed(product_id, price_id, customer_ids)


async def copy_seed(source_url: str, target_url: str, made: Seed) -> None:
    """The seeded rows, as Paywire stored them, into the bare app's database (each gets its own `seq`)."""
    source, target = Database(source_url), Database(target_url)
    try:
        for table, ids in ((products, [made.product_id]), (prices, [made.price_id]), (customers, made.customer_ids)):
            async with source.engine.connect() as conn:
                found = (await conn.execute(sa.select(table).where(table.c.id.in_(ids)))).mappings().all()
            async with target.transaction() as tx:
                await tx.conn.execute(table.insert(), [{k: v for k, v in row.items() if k != "seq"} for row in found])
    finally:
        await source.dispose()
        await target.dispose()


async def drive(url: str, key: str, clients: int, seconds: float, idempotent: bool, route: Route) -> list[float]:
    """Latencies (ms) of POSTs to `route` from `clients` clients for `seconds`."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def client() -> None:
            while time.monotonic() < until:
                extra = {"Idempotency-Key": uuid.uuid4().hex} if idempotent else {}
                t0 = time.perf_counter()
                async with session.post(f"{url}{route.path}", json=route.body(), headers=extra) as r:
                    await r.read()
                    assert r.status == 200, (r.status, await r.text())
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase(NamedTuple):
    rate: float
    p50: float
    p99: float
    cpu_us: float  # the server's CPU time per request


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 10 else float("nan")


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{url}/api/health") as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()


async def measure(url: str, server: int, key: str, args: argparse.Namespace, idempotent: bool, route: Route) -> Phase:
    await drive(url, key, args.clients, 2, idempotent, route)  # warm up
    cpu_before = cpu_seconds(server)
    latencies = await drive(url, key, args.clients, args.seconds, idempotent, route)
    cpu_us = (cpu_seconds(server) - cpu_before) / len(latencies) * 1e6
    return Phase(len(latencies) / args.seconds, quantile(latencies, 0.5), quantile(latencies, 0.99), cpu_us)


def report(name: str, path: str, results: dict[str, Phase], args: argparse.Namespace) -> None:
    baseline = results["bare FastAPI + SQLAlchemy"]
    print(f"{name}, POST {path}, {args.clients} clients, {args.seconds:.0f} s each (load {os.getloadavg()[0]:.2f}):")
    for label, phase in results.items():
        print(
            f"  {label:28} {phase.rate:7.0f} req/s  p50 {phase.p50:6.1f} ms  p99 {phase.p99:6.1f} ms"
            f"  ratio {phase.rate / baseline.rate:.2f}x  CPU {phase.cpu_us:5.0f} µs/req"
            f" ({phase.cpu_us / baseline.cpu_us:.2f}x)",
            flush=True,
        )


async def one_kind(name: str, paywire_url: str, bare_url: str, args: argparse.Namespace, workdir: Path) -> None:
    """Both servers up (the one not measured is idle); per route: Paywire, with a key, the bare app."""
    key = await migrated(paywire_url, with_key=True)
    await migrated(bare_url, with_key=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")}
    if paywire_url.startswith("postgresql"):
        env["PAYWIRE_ENCRYPTION_KEY"] = os.environ.get("PAYWIRE_ENCRYPTION_KEY") or generate_key()
    serve = ["serve", "--no-worker", "--port", str(args.port), "--database-url", paywire_url]
    paywire = start([sys.executable, "-m", "paywire.cli.main", *serve], env, workdir / f"paywire-{name}.log")
    bare = None
    try:
        paywire_at, bare_at = f"http://{HOST}:{args.port}", f"http://{HOST}:{args.port + 1}"
        await wait_up(paywire_at)
        routes = []
        if args.route in ("customers", "both"):
            routes.append(customer_route)
        if args.route in ("subscriptions", "both"):
            made = await seed(paywire_at, key, args.customers)
            await copy_seed(paywire_url, bare_url, made)
            routes.append(lambda: subscription_route(made.price_id, made.customer_ids))
        bare_command = [sys.executable, str(BENCH / "bare_api.py"), "--port", str(args.port + 1)]
        bare = start([*bare_command, "--database-url", bare_url], env, workdir / f"bare-{name}.log")
        await wait_up(bare_at)
        for make_route in routes:
            route = make_route()
            results = {
                "paywire": await measure(paywire_at, paywire.pid, key, args, False, route),
                "paywire + Idempotency-Key": await measure(paywire_at, paywire.pid, key, args, True, route),
                "bare FastAPI + SQLAlchemy": await measure(bare_at, bare.pid, "", args, False, route),
            }
            report(name, route.path, results, args)
    finally:
        stop(paywire)
        if bare is not None:
            stop(bare)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="paywire-apiw-") as tmp:
        workdir = Path(tmp)
        if args.db in ("sqlite", "both"):
            await one_kind(
                "SQLite", f"sqlite:///{workdir / 'paywire.db'}", f"sqlite:///{workdir / 'bare.db'}", args, workdir
            )
        if args.db in ("postgres", "both"):
            async with (
                scratch_database(args.pg, "paywire_apiw") as paywire_url,
                scratch_database(args.pg, "paywire_apiw_bare") as bare_url,
            ):
                await one_kind("PostgreSQL", paywire_url, bare_url, args, workdir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--route", choices=["customers", "subscriptions", "both"], default="both")
    parser.add_argument("--customers", type=int, default=100, help="customers subscribed round robin")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own databases from",
    )
    parser.add_argument("--port", type=int, default=8962)
    asyncio.run(main(parser.parse_args()))

"""Memory while delivering: `paywire serve` and `paywire worker` RSS over five batches of 100,000 webhooks.

    .venv/bin/python bench/memory.py [--database sqlite|postgres] [--batches 5] [--events 1000] [--endpoints 100]

Each batch creates `--events` customers through the API (`POST /api/customers` with an
`Idempotency-Key`, as the SDK sends, 8 clients at once); every `customer.created` goes to each of
`--endpoints` endpoints (all `["*"]`, one local receiver that verifies every signature): 1,000 x 100
= 100,000 deliveries per batch. After a batch is fully received and nothing is pending, the
resident memory (VmRSS) of each Paywire process is read from /proc. SQLite: one `paywire serve`
(API, worker and scheduler in one process). PostgreSQL: `paywire serve --no-worker` beside one
`paywire worker`.

Target (issue: memory): each process's RSS after the fifth batch within 10 % of after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import delivery as bench  # bench/delivery.py: the receiver, endpoint set-up, worker processes
import httpx
import sqlalchemy as sa
from procstat import die_with_parent, memory_mb
from scratch_database import create_pg_database, drop_pg_database
from soak import create_key, wait_http

from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries

TARGET = 1.10


def free_port() -> int:
    with socket.socket() as s:
        s.bind((bench.HOST, 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "paywire.cli.main", *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )


async def create_customers(api: httpx.AsyncClient, n: int, batch: int, clients: int = 8) -> None:
    queue = iter(range(n))

    async def client() -> None:
        for i in queue:
            response = await api.post(
                "/api/customers",
                json={"email": f"m{batch}-{i}@example.com", "metadata": {"batch": str(batch)}},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            response.raise_for_status()

    await asyncio.gather(*(client() for _ in range(clients)))


async def pending(db: Database) -> int:
    d = webhook_deliveries
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).where(d.c.status == "pending")) or 0)


async def run(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, list[float]]:
    receiver_port = free_port()
    receiver = bench.ReceiverClient(f"http://{bench.HOST}:{receiver_port}")
    receiver_proc = subprocess.Popen(
        [sys.executable, bench.__file__, "--receiver", str(receiver_port), "--secret", bench.SECRET],
        preexec_fn=die_with_parent,
    )
    db = await bench.prepare(url, receiver.url, ["/hook"] * args.endpoints)
    key = create_key(url)
    port = free_port()
    server_url = f"http://{bench.HOST}:{port}"
    serve_args = ["serve", "--database-url", url, "--port", str(port)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    rss: dict[str, list[float]] = {}
    try:
        if args.database == "sqlite":
            procs["serve"] = start(serve_args, workdir / "serve.log")
        else:
            procs["serve --no-worker"] = start([*serve_args, "--no-worker"], workdir / "serve.log")
            procs["worker"] = start(["worker", "--database-url", url], workdir / "worker.log")
        async with httpx.AsyncClient(base_url=server_url) as client:
            await wait_http(client, "/healthz")
        rss = {name: [memory_mb(p.pid)[0]] for name, p in procs.items()}
        print(f"{args.database}: started, RSS " + ", ".join(f"{n} {v[0]:.1f} MB" for n, v in rss.items()))
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=60) as api:
            for batch in range(1, args.batches + 1):
                started = time.monotonic()
                await create_customers(api, args.events, batch)
                expected = batch * args.events * args.endpoints
                while True:
                    stats = await receiver.stats()
                    received = stats["count"] + stats["dupes"]  # one receipt per (event, endpoint)
                    if received >= expected and await pending(db) == 0:
                        break
                    if time.monotonic() - started > args.timeout:
                        raise RuntimeError(f"batch {batch}: {received} of {expected} received")
                    await asyncio.sleep(0.25)
                if stats["bad"]:
                    raise RuntimeError(f"{stats['bad']} bad signatures")
                for name, p in procs.items():
                    rss[name].append(memory_mb(p.pid)[0])
                took = time.monotonic() - started
                line = ", ".join(f"{n} {v[-1]:.1f} MB" for n, v in rss.items())
                count = args.events * args.endpoints
                print(f"  batch {batch}: {count} deliveries in {took:.0f} s; RSS {line}", flush=True)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(15)
        receiver_proc.terminate()
        receiver_proc.wait(10)
        await receiver.session.close()
        await db.dispose()
    return rss


def report(database: str, rss: dict[str, list[float]]) -> bool:
    ok = True
    for name, values in rss.items():
        first, last = values[1], values[-1]
        ratio = last / first
        ok &= ratio <= TARGET
        print(
            f"{database} {name}: after batch 1 {first:.1f} MB, after batch {len(values) - 1} {last:.1f} MB:"
            f" x{ratio:.3f} (target <= {TARGET:.2f}) {'met' if ratio <= TARGET else 'MISSED'}"
        )
    return ok


async def main(args: argparse.Namespace) -> int:
    # PostgreSQL needs an encryption key that every process of the run shares.
    os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="paywire-memory-") as tmp:
        workdir = Path(tmp)
        if args.database == "sqlite":
            rss = await run(args, f"sqlite:///{workdir / 'memory.db'}", workdir)
        else:
            url, name = await create_pg_database(args.pg)
            try:
                rss = await run(args, url, workdir)
            finally:
                await drop_pg_database(args.pg, name)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0 if report(args.database, rss) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--events", type=int, default=1000, help="customers created per batch")
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900, help="seconds one batch may take")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    sys.exit(asyncio.run(main(parser.parse_args())))

"""Backlog drain: 200,000 pending deliveries queued while the receiver is down, then drained.

    .venv/bin/python bench/backlog.py [--deliveries 200000] [--database sqlite|postgres]

A `paywire worker` subprocess runs against the database the whole time. With the receiver down
(connection refused), the backlog is appended with the engine's own `events.log.append` in large
transactions (one event, one delivery to the one endpoint); the worker keeps failing and backs
the endpoint off. Then the receiver of `bench/delivery.py` (it verifies every signature) comes up
and the drain is measured: receipts per second over time, total drain time (receiver up → every
event received and nothing pending in the database), and the worker's RSS from /proc (target:
peak under 300 MB). Everything is on 127.0.0.1 and stops by itself (`--timeout`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import delivery as bench  # bench/delivery.py: receiver, endpoint set-up, worker processes
import sqlalchemy as sa
from procstat import memory_mb
from scratch_database import create_pg_database, drop_pg_database

from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries
from paywire.events.log import NewEvent, append

RSS_TARGET_MB = 300.0


async def pending(db: Database) -> int:
    d = webhook_deliveries
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).where(d.c.status == "pending")) or 0)


async def fill(db: Database, n: int, batch: int) -> float:
    """Append `n` events (one delivery each) in transactions of `batch`; returns events/s."""
    started = time.monotonic()
    for first in range(0, n, batch):
        async with db.transaction() as tx:
            new = [
                NewEvent("customer.created", {"id": f"cus_b{i}", "email": f"b{i}@example.com"})
                for i in range(first, min(n, first + batch))
            ]
            await append(tx, new, livemode=False, now=time.time())
    return n / (time.monotonic() - started)


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, bench.__file__, "--receiver", str(port), "--secret", bench.SECRET])


async def wait_up(receiver: bench.ReceiverClient, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await receiver.stats()
            return
        except aiohttp.ClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def drain(
    db: Database, receiver: bench.ReceiverClient, worker_pid: int, n: int, *, every: float, timeout: float
) -> dict[str, float]:
    """Sample until all `n` arrived and nothing is pending; prints one line per sample."""
    started = time.monotonic()
    last_t, last_count, peak_rss, rates = started, 0, 0.0, []
    print(f"{'t (s)':>7} {'received':>9} {'per s':>7} {'pending':>8} {'RSS MB':>7} {'peak MB':>8}")
    while True:
        await asyncio.sleep(every)
        now, stats = time.monotonic(), await receiver.stats()
        left = await pending(db)
        rss, peak_rss = memory_mb(worker_pid)
        per_s = (stats["count"] - last_count) / (now - last_t)
        rates.append(per_s)
        last_t, last_count = now, stats["count"]
        print(f"{now - started:7.1f} {stats['count']:9d} {per_s:7.0f} {left:8d} {rss:7.1f} {peak_rss:8.1f}", flush=True)
        if (stats["count"] >= n and left == 0) or now - started > timeout:
            break
    stats = await receiver.stats()
    return {
        "seconds": stats["last"] - stats["first"] if stats["count"] > 1 else 0.0,
        "wall": time.monotonic() - started,
        "received": stats["count"],
        "dupes": stats["dupes"],
        "bad": stats["bad"],
        "pending": left,
        "peak_rss": peak_rss,
        "first_quarter": _mean_rate(rates[: max(1, len(rates) // 4)]),
        "last_quarter": _mean_rate(rates[-max(1, len(rates) // 4) - 1 : -1] or rates[-1:]),
    }


def _mean_rate(rates: list[float]) -> float:
    return sum(rates) / len(rates) if rates else 0.0


async def database_url(kind: str, pg_admin: str, workdir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'backlog.db'}", None
    return await create_pg_database(pg_admin)


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="paywire-backlog-") as tmp:
        workdir = Path(tmp)
        url, pg_name = await database_url(args.database, args.pg, workdir)
        receiver = bench.ReceiverClient(f"http://{bench.HOST}:{args.port}")
        receiver_proc: subprocess.Popen[bytes] | None = None
        workers: list[subprocess.Popen[bytes]] = []
        db = await bench.prepare(url, receiver.url, ["/hook"])
        try:
            workers = bench.start_workers(url, 1, workdir)
            await bench.wait_workers_ready(workdir, 1)
            print(f"{args.database}: worker pid {workers[0].pid}, receiver down (connection refused)")
            rate = await fill(db, args.deliveries, args.batch)
            print(f"queued {args.deliveries} events + deliveries with events.log.append: {rate:.0f}/s")
            await asyncio.sleep(args.outage)  # the worker keeps failing and backs the endpoint off
            before = await pending(db)
            rss = memory_mb(workers[0].pid)[0]
            print(f"after a {args.outage:.0f} s outage: {before} pending; worker RSS {rss:.1f} MB")
            receiver_proc = start_receiver(args.port)
            await wait_up(receiver)
            print("receiver up; draining")
            result = await drain(db, receiver, workers[0].pid, args.deliveries, every=args.every, timeout=args.timeout)
        finally:
            bench.stop_workers(workers)
            if receiver_proc is not None:
                receiver_proc.terminate()
                receiver_proc.wait(10)
            await receiver.session.close()
            await db.dispose()
            if pg_name:
                await drop_pg_database(args.pg, pg_name)
    return report(args, result)


def report(args: argparse.Namespace, r: dict[str, float]) -> int:
    mean = r["received"] / r["seconds"] if r["seconds"] else 0.0
    print(
        f"\n{args.database}: drained {r['received']:.0f}/{args.deliveries} in {r['wall']:.1f} s after the receiver"
        f" came up (first→last receipt {r['seconds']:.1f} s, {mean:.0f} deliveries/s mean)"
    )
    print(
        f"rate, first quarter {r['first_quarter']:.0f}/s, last quarter {r['last_quarter']:.0f}/s;"
        f" duplicates {r['dupes']:.0f}, bad signatures {r['bad']:.0f}, still pending {r['pending']:.0f}"
    )
    print(f"worker peak RSS (VmHWM) {r['peak_rss']:.1f} MB (target < {RSS_TARGET_MB:.0f} MB)")
    ok = r["received"] >= args.deliveries and r["pending"] == 0 and r["bad"] == 0 and r["peak_rss"] < RSS_TARGET_MB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own database from",
    )
    parser.add_argument("--batch", type=int, default=2000, help="events per append transaction")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the receiver stays down after filling")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=1200.0, help="give up draining after this many seconds")
    parser.add_argument("--port", type=int, default=8921)
    sys.exit(asyncio.run(main(parser.parse_args())))

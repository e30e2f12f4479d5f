"""A live remote EventBus consumer vs a Redis Streams consumer group, in the same run.

    .venv/bin/python bench/eventbus.py [--db sqlite|postgres|both] [--rate 1000] [--seconds 10] [--burst 20000]

Paywire: a `paywire serve --no-worker` process; events are committed by ANOTHER process (a
writer appending to the event log, as a worker's scheduler or a second API process would), and
`EventBus.connect(url)` in this process consumes them over `GET /api/events/stream`.
Redis (127.0.0.1:6379): the writer `XADD`s, a consumer group reads with `XREADGROUP` and `XACK`s.

Two figures each: lag (commit → handler, from a timestamp the writer puts in each event just
before its commit) at `--rate` events/s in commits every 10 ms, p50/p99; and live throughput: the
writer commits `--burst` events as fast as it can (500 a commit) while the consumer runs, events
handled per second from the first to the last. Printed with the ratios against Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scratch_database import scratch_database  # bench/, beside this script

from paywire import Event, EventBus, keys
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.events import log as event_log
from paywire.events.log import NewEvent

HOST = "127.0.0.1"
TICK = 0.01  # the paced writer commits every 10 ms
STREAM = "paywire-bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


# --- writers (their own process) -------------------------------------------------------------------


async def paced(commit: Any, rate: float, seconds: float) -> int:
    """Call `commit(n)` every TICK with the events due by then; returns the events written."""
    written, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - written
        if due > 0:
            await commit(due)
            written += due
        await asyncio.sleep(TICK)
    rest = int(rate * seconds) - written  # the last tick falls short of the end: the consumer expects them all
    if rest > 0:
        await commit(rest)
        written += rest
    return written


async def write_paywire(db_url: str, rate: float, seconds: float, burst: int) -> None:
    db = Database(db_url, pool_size=2)
    counter = 0

    async def commit(n: int) -> None:
        nonlocal counter
        async with db.transaction() as tx:
            now = time.time()  # just before the commit: lag is measured from here
            batch = [NewEvent("invoice.paid", {"id": f"in_{counter + i}", "t": now}) for i in range(n)]
            await event_log.append(tx, batch, livemode=False, now=now)
        counter += n

    if burst:
        for start in range(0, burst, 500):
            await commit(min(500, burst - start))
    else:
        await paced(commit, rate, seconds)
    await db.dispose()


async def write_redis(rate: float, seconds: float, burst: int) -> None:
    import redis.asyncio as redis

    r = redis.Redis(host=HOST, port=6379)
    counter = 0

    async def commit(n: int) -> None:
        nonlocal counter
        pipe = r.pipeline(transaction=False)
        now = time.time()
        for i in range(n):
            pipe.xadd(STREAM, {"id": f"in_{counter + i}", "t": repr(now)})
        await pipe.execute()
        counter += n

    if burst:
        for start in range(0, burst, 500):
            await commit(min(500, burst - start))
    else:
        await paced(commit, rate, seconds)
    await r.aclose()


def run_writer(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--write", json.dumps(args)])


# --- consumers (in this process) ------------------------------------------------------------------------


async def consume_paywire(url: str, key: str, expect: int, timeout: float, writer: list[str]) -> list[float]:
    """Start the bus, then the writer; the receipt times and lags (s) of `expect` events."""
    lags: list[float] = []
    got: list[float] = []
    done = asyncio.Event()
    bus = EventBus.connect(url, api_key=key)

    async def handle(event: Event) -> None:
        now = time.time()
        got.append(now)
        lags.append(now - float(event.data.object["t"]))
        if len(got) >= expect:
            done.set()

    bus.subscribe(handle)
    runner = asyncio.create_task(bus.run_async())
    await asyncio.sleep(1.0)  # the stream is open and live
    proc = run_writer(writer)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        print(f"  (timed out: {len(got)} of {expect} events)")
    finally:
        await bus.stop()
        runner.cancel()
        proc.wait(60)
    return [got[-1] - got[0] if len(got) > 1 else float("nan"), *lags]


async def consume_redis(expect: int, timeout: float, writer: list[str]) -> list[float]:
    import redis.asyncio as redis

    r = redis.Redis(host=HOST, port=6379)
    await r.delete(STREAM)
    await r.xgroup_create(STREAM, "bench", id="$", mkstream=True)
    lags: list[float] = []
    got: list[float] = []
    proc = run_writer(writer)
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            answer: Any = await r.xreadgroup("bench", "c1", {STREAM: ">"}, count=500, block=1000)
            for _stream, messages in answer or []:
                now = time.time()
                ids = []
                for message_id, fields in messages:
                    got.append(now)
                    lags.append(now - float(fields[b"t"]))
                    ids.append(message_id)
                await r.xack(STREAM, "bench", *ids)
    finally:
        proc.wait(60)
        await r.delete(STREAM)
        await r.aclose()
    return [got[-1] - got[0] if len(got) > 1 else float("nan"), *lags]


# --- one database -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def wait_up(url: str) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(f"{url}/api/health")).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def show(name: str, lag: list[float], throughput: float, base: tuple[list[float], float] | None) -> None:
    p50, p99 = percentile(lag, 0.5) * 1000, percentile(lag, 0.99) * 1000
    line = f"{name:12} lag p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   live throughput {throughput:8.0f}/s"
    if base is not None:
        line += f"   ratio to Redis {throughput / base[1]:.2f}"
    print(line, flush=True)


async def one_database(name: str, db_url: str, args: argparse.Namespace, workdir: Path) -> None:
    db = Database(db_url)
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    await db.dispose()
    log = open(workdir / f"serve-{name}.log", "wb")  # noqa: SIM115
    port = args.port or free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paywire.cli.main",
            "serve",
            "--no-worker",
            "--port",
            str(port),
            "--database-url",
            db_url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{HOST}:{port}"
    n = int(args.rate * args.seconds)
    try:
        await wait_up(url)
        paced_args = ["paywire", db_url, str(args.rate), str(args.seconds), "0"]
        timing = await consume_paywire(url, key, n, args.seconds + 60, paced_args)
        burst = await consume_paywire(url, key, args.burst, 120, ["paywire", db_url, "0", "0", str(args.burst)])
        show(name, timing[1:], args.burst / burst[0], None)
        RESULTS[name] = (timing[1:], args.burst / burst[0])
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


RESULTS: dict[str, tuple[list[float], float]] = {}


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    n = int(args.rate * args.seconds)
    timing = await consume_redis(n, args.seconds + 60, ["redis", "", str(args.rate), str(args.seconds), "0"])
    burst = await consume_redis(args.burst, 120, ["redis", "", "0", "0", str(args.burst)])
    redis_figures = (timing[1:], args.burst / burst[0])
    show("Redis", *redis_figures, None)
    with tempfile.TemporaryDirectory(prefix="paywire-eventbus-") as tmp:
        workdir = Path(tmp)
        if args.db in ("sqlite", "both"):
            await one_database("SQLite", f"sqlite:///{workdir / 'bus.db'}", args, workdir)
        if args.db in ("postgres", "both"):
            async with scratch_database(args.pg, "paywire_eventbus") as pg_url:
                await one_database("PostgreSQL", pg_url, args, workdir)
    print(f"(at {args.rate:.0f} events/s for {args.seconds:.0f} s; throughput over {args.burst} events)")
    for name, (lag, throughput) in RESULTS.items():
        show(name, lag, throughput, redis_figures)


def writer_main(spec: str) -> None:
    kind, db_url, rate, seconds, burst = json.loads(spec)
    if kind == "redis":
        asyncio.run(write_redis(float(rate), float(seconds), int(burst)))
    else:
        asyncio.run(write_paywire(db_url, float(rate), float(seconds), int(burst)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second for the lag figures")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced run")
    parser.add_argument("--burst", type=int, default=20000, help="events written flat out for the throughput")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own database from",
    )
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.write:
        writer_main(parsed.write)
    else:
        asyncio.run(main(parsed))

"""A live remote EventBus consumer vs a Redis Streams consumer group, in the same run.

    .venv/bin/python bench/eventbus.py [--db sqlite|postgres|both] [--rate 1000] [--seconds 10]
        [--burst 40000] [--writers 2] [--batch 1000]

Paywire: a `paywire serve --no-worker` process; events are committed by OTHER processes (writers
appending to the event log, as a worker's scheduler or a second API process would), and
`EventBus.connect(url)` in this process consumes them over `GET /api/events/stream`.
Redis (127.0.0.1:6379): the writers `XADD`, a consumer group reads with `XREADGROUP` and `XACK`s.

Two figures each:

- lag at `--rate` events/s, one writer committing every 10 ms (`event_log.append`, the path of
  a state change), p50/p99 of handler time minus the writer's clock, twice: from the moment the
  commit returned (the delivery path alone) and from just before the commit (commit included).
  The writer keeps both times per commit in memory and hands them over in a file once done: the
  events carry nothing extra.
- live throughput: `--writers` processes commit `--burst` events between them as fast as they
  can (`event_log.append_many`, `--batch` events a commit: real event-log rows, `seq` as the
  engine assigns it) while the consumer runs; events handled per second from the first to the
  last. The writers' own rate is printed beside it: the figure is the consumer's only when the
  writers were faster. On the development VM PostgreSQL takes ~12,000 events/s however many
  writers (the event-order lock serialises their inserts), so Paywire's live figure is also
  shown on a backlog: a bus started before the burst's events, once they are all committed,
  reads them with no writer to wait for.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scratch_database import scratch_database  # bench/, beside this script

from paywire import Event, EventBus, keys
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.events import log as event_log
from paywire.events.log import Batch, NewEvent
from paywire.events.remote import RemoteSource

HOST = "127.0.0.1"
TICK = 0.01  # the paced writer commits every 10 ms
STREAM = "paywire-bench"

Commit = Callable[[int, int], Awaitable[None]]  # (first index, how many)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


# --- writers (their own processes) ---------------------------------------------------------------


@dataclass(frozen=True)
class WriterSpec:
    kind: str  # "paywire" or "redis"
    db_url: str
    rate: float  # paced: events per second (0: flat out)
    seconds: float
    first: int  # the index of the writer's first event (its object id is `in_<index>`)
    count: int  # flat out: events to write
    batch: int  # flat out: events per commit
    record: str  # the file the commit times go to
    start_at: float  # the wall-clock time to begin at (writers started together begin together)


async def paced(commit: Commit, spec: WriterSpec) -> None:
    """Commit every TICK the events due by then."""
    written, started = 0, time.monotonic()
    total = int(spec.rate * spec.seconds)
    while (elapsed := time.monotonic() - started) < spec.seconds:
        due = min(total, int(elapsed * spec.rate)) - written
        if due > 0:
            await commit(spec.first + written, due)
            written += due
        await asyncio.sleep(TICK)
    if total > written:  # the last tick falls short of the end: the consumer expects them all
        await commit(spec.first + written, total - written)


async def flat_out(commit: Commit, spec: WriterSpec) -> None:
    for offset in range(0, spec.count, spec.batch):
        await commit(spec.first + offset, min(spec.batch, spec.count - offset))


def timed(commit: Commit, times: list[tuple[int, int, float, float]]) -> Commit:
    """`commit`, noting (first, n, before, done) on the wall clock the consumer reads too."""

    async def run(first: int, n: int) -> None:
        before = time.time()
        await commit(first, n)
        times.append((first, n, before, time.time()))

    return run


async def write_paywire(spec: WriterSpec, times: list[tuple[int, int, float, float]]) -> None:
    db = Database(spec.db_url, pool_size=2)

    def made(first: int, n: int) -> list[NewEvent]:
        return [NewEvent("invoice.paid", {"id": f"in_{i}"}) for i in range(first, first + n)]

    async def one_change(first: int, n: int) -> None:  # a state change's commit
        async with db.transaction() as tx:
            await event_log.append(tx, made(first, n), livemode=False, now=time.time())

    async def bulk(first: int, n: int) -> None:  # a batch's commit (renewals), one insert for all
        async with db.transaction() as tx:
            await event_log.append_many(tx, [Batch(made(first, n), livemode=False, now=time.time())])

    try:
        if spec.rate:
            await paced(timed(one_change, times), spec)
        else:
            await flat_out(timed(bulk, times), spec)
    finally:
        await db.dispose()


async def write_redis(spec: WriterSpec, times: list[tuple[int, int, float, float]]) -> None:
    import redis.asyncio as redis

    r = redis.Redis(host=HOST, port=6379)

    async def commit(first: int, n: int) -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(first, first + n):
            pipe.xadd(STREAM, {"id": f"in_{i}"})
        await pipe.execute()

    try:
        await (paced if spec.rate else flat_out)(timed(commit, times), spec)
    finally:
        await r.aclose()


def writer_main(raw: str) -> None:
    spec = WriterSpec(**json.loads(raw))
    times: list[tuple[int, int, float, float]] = []
    time.sleep(max(0.0, spec.start_at - time.time()))
    asyncio.run((write_redis if spec.kind == "redis" else write_paywire)(spec, times))
    Path(spec.record).write_text(json.dumps(times))


class Writers:
    """The writer processes of one measurement, and the commit times they hand back."""

    def __init__(self, specs: list[WriterSpec]) -> None:
        self.specs = specs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for spec in self.specs:
            args = [sys.executable, __file__, "--write", json.dumps(spec.__dict__)]
            self.procs.append(subprocess.Popen(args))

    def wait(self) -> list[tuple[int, int, float, float]]:
        times: list[tuple[int, int, float, float]] = []
        for proc, spec in zip(self.procs, self.specs, strict=True):
            proc.wait(120)
            record = Path(spec.record)
            if record.exists():
                times += [tuple(t) for t in json.loads(record.read_text())]  # type: ignore[misc]
                record.unlink()
        return times


def writers(kind: str, db_url: str, args: argparse.Namespace, workdir: Path, *, burst: bool) -> Writers:
    start_at = time.time() + 2.0  # after the writers' imports; the consumer is live by then

    def spec(i: int, first: int, count: int) -> WriterSpec:
        rate = 0.0 if burst else args.rate
        record = str(workdir / f"commits-{kind}-{i}.json")
        return WriterSpec(kind, db_url, rate, args.seconds, first, count, args.batch, record, start_at)

    if not burst:
        return Writers([spec(0, 0, 0)])
    share = args.burst // args.writers
    return Writers([spec(i, i * share, share) for i in range(args.writers)])


# --- the figures -----------------------------------------------------------------------------


@dataclass
class Figures:
    from_commit: list[float]  # handler time - the commit's return (s)
    with_commit: list[float]  # handler time - just before the commit (s)
    missing: int


def lags(handled: dict[str, float], times: list[tuple[int, int, float, float]]) -> Figures:
    figures = Figures([], [], 0)
    for first, n, before, done in times:
        for i in range(first, first + n):
            at = handled.get(f"in_{i}")
            if at is None:
                figures.missing += 1
            else:
                figures.from_commit.append(at - done)
                figures.with_commit.append(at - before)
    return figures


@dataclass
class Throughput:
    consumer: float  # events handled per second, first to last
    writers: float  # events committed per second, the first commit's start to the last's end
    missing: int


def throughput(handled: dict[str, float], times: list[tuple[int, int, float, float]]) -> Throughput:
    written = sum(n for _, n, _, _ in times)
    at = sorted(handled.values())
    consumer = len(at) / (at[-1] - at[0]) if len(at) > 1 else float("nan")
    span = max(done for *_, done in times) - min(before for _, _, before, _ in times) if times else 0.0
    return Throughput(consumer, written / span if span else float("nan"), written - len(handled))


# --- consumers (in this process) ------------------------------------------------------------------


class FromPosition(RemoteSource):
    """A remote source whose "now" is a given event id: a bus that starts behind, on a backlog."""

    def __init__(self, url: str, key: str, position: str) -> None:
        super().__init__(url, api_key=key)
        self.position = position

    async def head(self) -> str:
        return self.position


async def consume_paywire(
    url: str, key: str, expect: int, timeout: float, run: Writers | None, after: str | None = None
) -> dict[str, float]:
    """Start the bus (from now, or after the event `after`), then the writers (if any); when each
    of `expect` events was handled, by object id."""
    handled: dict[str, float] = {}
    done = asyncio.Event()
    bus = EventBus(FromPosition(url, key, after)) if after else EventBus.connect(url, api_key=key)

    async def handle(event: Event) -> None:
        handled[event.data.object["id"]] = time.time()
        if len(handled) >= expect:
            done.set()

    bus.subscribe(handle)
    runner = asyncio.create_task(bus.run_async())
    await asyncio.sleep(0 if run is None else 1.0)  # the stream is open and live
    if run is not None:
        run.start()
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        print(f"  (timed out: {len(handled)} of {expect} events)")
    finally:
        await bus.stop()
        runner.cancel()
    return handled


async def consume_redis(expect: int, timeout: float, run: Writers) -> dict[str, float]:
    import redis.asyncio as redis

    r = redis.Redis(host=HOST, port=6379)
    await r.delete(STREAM)
    await r.xgroup_create(STREAM, "bench", id="$", mkstream=True)
    handled: dict[str, float] = {}
    run.start()
    deadline = time.monotonic() + timeout
    try:
        while len(handled) < expect and time.monotonic() < deadline:
            answer: Any = await r.xreadgroup("bench", "c1", {STREAM: ">"}, count=500, block=1000)
            for _stream, messages in answer or []:
                now = time.time()
                ids = []
                for message_id, fields in messages:
                    handled[fields[b"id"].decode()] = now
                    ids.append(message_id)
                await r.xack(STREAM, "bench", *ids)
    finally:
        await r.delete(STREAM)
        await r.aclose()
    return handled


# --- one system ------------------------------------------------------------------------------------


@dataclass
class Result:
    lag: Figures
    burst: Throughput
    backlog: float | None = None  # events handled per second reading a backlog (Paywire)


def show(name: str, result: Result, base: Result | None) -> None:
    both = (result.lag.from_commit, result.lag.with_commit)
    ms = [percentile(values, q) * 1000 for values in both for q in (0.5, 0.99)]
    line = (
        f"{name:11} lag from commit p50 {ms[0]:6.1f} p99 {ms[1]:6.1f} ms; with the commit p50 {ms[2]:6.1f} p99"
        f" {ms[3]:6.1f} ms | live {result.burst.consumer:7.0f}/s (writers {result.burst.writers:7.0f}/s)"
    )
    if base is not None:
        line += f" ratio to Redis {result.burst.consumer / base.burst.consumer:.2f}"
    if result.backlog is not None:
        line += f" | backlog {result.backlog:7.0f}/s"
        if base is not None:
            line += f" ratio {result.backlog / base.burst.consumer:.2f}"
    if result.lag.missing or result.burst.missing:
        line += f" MISSING {result.lag.missing} + {result.burst.missing}"
    print(line, flush=True)


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


async def redis(args: argparse.Namespace, workdir: Path) -> Result:
    paced_run = writers("redis", "", args, workdir, burst=False)
    handled = await consume_redis(int(args.rate * args.seconds), args.seconds + 60, paced_run)
    lag = lags(handled, paced_run.wait())
    burst_run = writers("redis", "", args, workdir, burst=True)
    handled = await consume_redis(args.burst // args.writers * args.writers, 120, burst_run)
    return Result(lag, throughput(handled, burst_run.wait()))


async def paywire(name: str, db_url: str, args: argparse.Namespace, workdir: Path) -> Result:
    db = Database(db_url)
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    await db.dispose()
    log = open(workdir / f"serve-{name}.log", "wb")  # noqa: SIM115
    port = args.port or free_port()
    serve = [sys.executable, "-m", "paywire.cli.main", "serve", "--no-worker", "--port", str(port)]
    server = subprocess.Popen([*serve, "--database-url", db_url], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        await wait_up(url)
        paced_run = writers("paywire", db_url, args, workdir, burst=False)
        handled = await consume_paywire(url, key, int(args.rate * args.seconds), args.seconds + 60, paced_run)
        lag = lags(handled, paced_run.wait())
        burst_run = writers("paywire", db_url, args, workdir, burst=True)
        expect = args.burst // args.writers * args.writers
        before_burst = await RemoteSource(url, api_key=key).head()
        handled = await consume_paywire(url, key, expect, 120, burst_run)
        result = Result(lag, throughput(handled, burst_run.wait()))
        # The same events again, all committed already: what the consumer manages without waiting
        # for a writer (the stream reads them itself, in pages, since they are behind the hub's window).
        backlog = sorted((await consume_paywire(url, key, expect, 120, None, before_burst)).values())
        result.backlog = len(backlog) / (backlog[-1] - backlog[0]) if len(backlog) > 1 else float("nan")
        return result
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="paywire-eventbus-") as tmp:
        workdir = Path(tmp)
        results["Redis"] = await redis(args, workdir)
        show("Redis", results["Redis"], None)
        if args.db in ("sqlite", "both"):
            results["SQLite"] = await paywire("SQLite", f"sqlite:///{workdir / 'bus.db'}", args, workdir)
            show("SQLite", results["SQLite"], None)
        if args.db in ("postgres", "both"):
            async with scratch_database(args.pg, "paywire_eventbus") as pg_url:
                results["PostgreSQL"] = await paywire("PostgreSQL", pg_url, args, workdir)
                show("PostgreSQL", results["PostgreSQL"], None)
    print(
        f"(lag at {args.rate:.0f} events/s for {args.seconds:.0f} s; throughput over {args.burst} events,"
        f" {args.writers} writers, {args.batch} a commit)"
    )
    for name, result in results.items():
        show(name, result, results["Redis"] if name != "Redis" else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second for the lag figures")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced run")
    parser.add_argument("--burst", type=int, default=40000, help="events written flat out for the throughput")
    parser.add_argument("--writers", type=int, default=2, help="writer processes for the throughput")
    parser.add_argument("--batch", type=int, default=1000, help="events per commit for the throughput")
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

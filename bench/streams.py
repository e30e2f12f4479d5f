"""Open event streams vs API latency and write throughput, in the same run, on 127.0.0.1 only.

    .venv/bin/python bench/streams.py [--streams 1000] [--seconds 10] [--rounds 1] [--db sqlite|postgres|both]

A `paywire serve --no-worker` process serves the API. A light writer (one client creating
customers back to back, each an event) and a reader (one client, `GET /api/events?size=1`)
run for `--seconds`, first with no stream open, then with `--streams` open
`GET /api/events/stream` connections held by a separate client process, which counts the
events each stream receives (the `id:` lines, without parsing the JSON: see `hold_streams`).
Printed: writes per second and read latency p50/p99 for both, and their ratios. With `--rounds R`
the two phases alternate R times (new streams each time) and the figures pool every round's
reads and writes, so load from elsewhere on the machine drifting over the run weighs on both.
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
from pathlib import Path
from typing import Any

import aiohttp
from scratch_database import scratch_database  # bench/, beside this script

from paywire import keys
from paywire.db import migrate
from paywire.db.engine import Database

HOST = "127.0.0.1"
ID_LINE = b"\nid: "  # one per event in a stream (the first message, `ready`, has none)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the stream holder (its own process) ----------------------------------------------------------


async def hold_streams(url: str, key: str, n: int) -> None:
    """Open `n` streams; print "ready" once all are open; on stdin EOF print event counts."""
    counts = [0] * n
    opened = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
    ) as session:

        async def one(i: int) -> None:
            # Counts events without splitting lines or parsing JSON: this process shares the
            # machine's cores with the server, and a line-by-line reader cost it most of a core
            # with 1,000 streams. Every event is one "\nid: " (JSON data has no raw newline); the
            # last bytes of a chunk are kept so one split across two chunks still counts once.
            nonlocal opened
            async with session.get(f"{url}/api/events/stream") as response:
                assert response.status == 200, response.status
                ready, tail = False, b""
                async for chunk in response.content.iter_any():
                    data = tail + chunk
                    if not ready and b"event: ready\n" in data:
                        ready = True
                        opened += 1
                    counts[i] += data.count(ID_LINE)
                    tail = data[-(len(ID_LINE) - 1) :]

        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a gentle ramp: the accept queue is finite
        while opened < n:
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(f"counts {min(counts)} {max(counts)}", flush=True)
        for t in tasks:
            t.cancel()


# --- load ---------------------------------------------------------------------------------------------


async def load(url: str, key: str, seconds: float) -> tuple[float, float, float, int, list[float]]:
    """Writes per second, read latency p50 and p99 (ms), events written, every read's latency."""
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    writes = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(headers=headers) as session:

        async def writer() -> None:
            nonlocal writes
            while time.monotonic() < deadline:
                async with session.post(f"{url}/api/customers", json={"email": f"{writes}@example.com"}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                writes += 1

        async def reader() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.get(f"{url}/api/events", params={"size": "1"}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(writer(), reader())
        elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return writes / elapsed, statistics.median(latencies), p99, writes, latencies


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
    raise RuntimeError("server did not start")


class Phase:
    """One side of the comparison (no stream, or N streams), over every round."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.writes = 0
        self.seconds = 0.0
        self.cpu = 0.0  # the server's
        self.client_cpu = 0.0  # the stream holder's
        self.p99s: list[float] = []
        self.opened: list[float] = []
        self.counts: list[str] = []

    def add(self, measured: tuple[float, float, float, int, list[float]], seconds: float) -> None:
        _, _, p99, writes, latencies = measured
        self.writes += writes
        self.seconds += seconds
        self.latencies += latencies
        self.p99s.append(p99)

    def figures(self) -> tuple[float, float, float]:
        """Writes per second, read p50 and p99 (ms), over every round."""
        latencies = sorted(self.latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return self.writes / self.seconds, statistics.median(latencies), p99


async def no_streams(url: str, key: str, args: argparse.Namespace, pid: int, phase: Phase) -> None:
    cpu = cpu_seconds(pid)
    phase.add(await load(url, key, args.seconds), args.seconds)
    phase.cpu += cpu_seconds(pid) - cpu


async def with_open_streams(url: str, key: str, args: argparse.Namespace, pid: int, phase: Phase) -> None:
    """Open the streams (a holder process), measure, check every stream got every event, close them."""
    holder = subprocess.Popen(
        [sys.executable, __file__, "--hold", url, "--key", key, "--streams", str(args.streams)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        opened = time.monotonic()
        line = await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)
        assert line.strip() == "ready", line
        phase.opened.append(time.monotonic() - opened)
        cpu, held = cpu_seconds(pid), cpu_seconds(holder.pid)
        measured = await load(url, key, args.seconds)
        phase.cpu += cpu_seconds(pid) - cpu
        phase.client_cpu += cpu_seconds(holder.pid) - held
        phase.add(measured, args.seconds)
        await asyncio.sleep(2)  # the last events reach every stream
        holder.stdin.close()
        counts = await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)
        phase.counts.append(f"{' '.join(counts.split()[1:])} of {measured[3]}")
    finally:
        holder.kill()
        holder.wait()
    await asyncio.sleep(1)  # the server lets go of the closed streams before the next round


async def one_database(name: str, db_url: str, args: argparse.Namespace, workdir: Path, src: str | None = None) -> None:
    """Both phases against one server (its code from `src`, if given: a baseline to compare)."""
    db = Database(db_url)
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    await db.dispose()
    log = open(workdir / f"serve-{name}.log", "wb")  # noqa: SIM115
    # BENCH_SERVER: another way to start it (e.g. a script running the CLI under a profiler).
    command = [sys.executable, *os.environ.get("BENCH_SERVER", "-m paywire.cli.main").split()]
    server = subprocess.Popen(
        [*command, "serve", "--no-worker", "--port", str(args.port), "--database-url", db_url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": src} if src else None,
    )
    url = f"http://{HOST}:{args.port}"
    try:
        await wait_up(url)
        await load(url, key, 1.0)  # warm-up
        without, with_streams = Phase(), Phase()
        for _ in range(args.rounds):
            await no_streams(url, key, args, server.pid, without)
            await with_open_streams(url, key, args, server.pid, with_streams)
        w0, p50_0, p99_0 = without.figures()
        w1, p50_1, p99_1 = with_streams.figures()
        print(
            f"{name:15} no streams            {w0:7.1f} writes/s   reads p50 {p50_0:6.1f} ms  p99 {p99_0:6.1f} ms"
            f"   server CPU {without.cpu / without.seconds:.2f}"
        )
        print(
            f"{name:15} {args.streams:5d} streams         {w1:7.1f} writes/s   reads p50 {p50_1:6.1f} ms  "
            f"p99 {p99_1:6.1f} ms   server CPU {with_streams.cpu / with_streams.seconds:.2f}, "
            f"stream client CPU {with_streams.client_cpu / with_streams.seconds:.2f}"
            f"   (opened in {' '.join(f'{t:.1f}' for t in with_streams.opened)} s; events per stream "
            f"min/max of written, per round: {'; '.join(with_streams.counts)})"
        )
        print(f"{name:15} ratios: writes {w1 / w0:.2f}   read p50 {p50_1 / p50_0:.2f}   read p99 {p99_1 / p99_0:.2f}")
        if args.rounds > 1:
            print(
                f"{name:15} per round, read p99 ms without / with: "
                + "   ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(without.p99s, with_streams.p99s, strict=True))
            )
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="paywire-streams-") as tmp:
        workdir = Path(tmp)
        runs: list[tuple[str, str | None]] = [("", None)]
        if args.baseline:
            runs.insert(0, ("base ", args.baseline))
        if args.db in ("sqlite", "both"):
            for label, src in runs:
                db_path = workdir / f"s{uuid.uuid4().hex[:6]}.db"
                await one_database(f"{label}SQLite", f"sqlite:///{db_path}", args, workdir, src)
        if args.db in ("postgres", "both"):
            for label, src in runs:
                async with scratch_database(args.pg, "paywire_streams") as pg_url:
                    await one_database(f"{label}PostgreSQL", pg_url, args, workdir, src)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the two phases this many times (each --seconds long), pooling the figures: "
        "a machine whose load drifts then weighs on both",
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own database from",
    )
    parser.add_argument(
        "--baseline",
        help="a `src` directory of other Paywire code (e.g. `git archive` of an older commit): run it first",
    )
    parser.add_argument("--port", type=int, default=8951)
    parser.add_argument("--hold", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args: Any = parser.parse_args()
    if args.hold:
        asyncio.run(hold_streams(args.hold, args.key, args.streams))
    else:
        asyncio.run(main(args))

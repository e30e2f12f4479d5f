"""Retention vs API write latency, in the same run, on 127.0.0.1 only.

    .venv/bin/python bench/prune.py [--events 1000000] [--window 5] [--pairs 6] [--db sqlite|postgres|both]
    .venv/bin/python bench/prune.py --db sqlite --pairs 8 --versus-src DIR   # DIR/src: the other code, same run
    .venv/bin/python bench/prune.py --db sqlite --null                       # the ratios with no pruning at all

The database is filled (bulk inserts, 10,000 rows a statement) with `--events` events created 40
days ago, each with one succeeded delivery and one attempt: all past the default 30-day
retention. The fill is then settled as a long-running database's would be (`settle`: PostgreSQL
`VACUUM ANALYZE` of the three tables and a `CHECKPOINT`; SQLite a truncating WAL checkpoint), so
that the bulk load's own flushing is not inside either measured phase. A `paywire serve
--no-worker` process serves the API (no worker: nothing prunes but the bench). `--clients`
clients create customers back to back (`POST /api/customers`, each a write transaction with an
event) throughout, while a pruner (`--pruner` mode of this script: the worker's own
`retention.prune` with the settings' policy, in a process already up) is resumed and paused so
that windows without and with pruning alternate: `--pairs` pairs of `--window` seconds, off/on
then on/off, so that drift on the shared machine (checkpoints, other work, cache warmth) falls on
both sides. A pause takes effect between batches (nothing is held then). Printed: each pair's
p99 and their ratio, the pooled p50/p99 of all off windows against all on windows, the rows
removed per second of pruning, and the pruner's batch, checkpoint and lock-wait times.
`--versus-src DIR` (the paywire under DIR/src, e.g. a `git archive` of main) or `--versus-set
NAME=VALUE` (settings) add a second pruner B that takes every other pair (A B B A A B B A…) on the
same backlog. `--null` never resumes the pruner: the spread of the ratios from noise alone.

`--sequential` is the old mode: `--seconds` with nothing else running, then again while a
`paywire prune` process runs (measured from `--startup` seconds after it is launched), until it
ends or `--seconds` pass. The prune is then stopped (SIGTERM: its open batch rolls back) unless
`--whole` lets it finish the backlog: at 1,000,000 events that takes minutes, and only the window
is compared. Drift between the two phases lands in one of them only.

On PostgreSQL the attempts table is partitioned by day (`paywire.db.partitions`): the fill first
creates the partition of the old day, as the worker's retention service would have, so the prune
drops it whole. `--no-day-partition` leaves the old attempts in the DEFAULT partition instead,
where they are deleted in batches as on SQLite: the same run's comparison without partitioning.
`--attempts-only` fills old attempts alone (no events, no deliveries), so that the prune is only
what partitioning changes; with a day partition it is over within a second, so pass
`--startup 0` to measure from the prune's launch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from scratch_database import scratch_database  # bench/, beside this script

from paywire import keys
from paywire.db import migrate, partitions
from paywire.db.dialect import insert_rows
from paywire.db.engine import Database
from paywire.db.schema import events, webhook_attempts, webhook_deliveries
from paywire.ids import new_id
from paywire.secrets_at_rest import generate_key

HOST = "127.0.0.1"
CHUNK = 10_000


async def fill(db: Database, n: int, *, day_partition: bool = True, attempts_only: bool = False) -> float:
    """`n` old events, each with a succeeded delivery and an attempt; returns seconds taken."""
    started = time.monotonic()
    old = time.time() - 40 * 86_400
    if db.is_postgres and day_partition:
        await partitions.ensure(db, old, old + 1)
    async with db.read() as conn:
        first = int(await conn.scalar(sa_max_seq()) or 0)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        ids = [new_id("evt") for _ in range(lo, hi)]
        event_rows = [
            {
                "id": ids[i - lo],
                "livemode": False,
                "type": "customer.created",
                "api_version": "2026-11-26",
                "object_type": "customer",
                "object_id": f"cus_bench{i}",
                "data": {"object": {"id": f"cus_bench{i}", "object": "customer", "email": f"c{i}@example.com"}},
                "request_id": None,
                "idempotency_key": None,
                "metadata": {},
                "created": int(old),
            }
            for i in range(lo, hi)
        ]
        delivery_rows = [
            {
                "event_id": ids[i - lo],
                "endpoint_id": "we_bench",
                "livemode": False,
                "status": "succeeded",
                "attempts": 1,
                "next_attempt": old,
                "lease_until": None,
                "lease_owner": None,
                "last_error": None,
                "created": int(old),
                "updated": int(old),
            }
            for i in range(lo, hi)
        ]
        async with db.transaction() as tx:
            if not attempts_only:
                await insert_rows(tx.conn, events, event_rows)
                await insert_rows(tx.conn, webhook_deliveries, delivery_rows)
            attempt_rows = [
                {
                    "id": new_id("wha"),
                    "livemode": False,
                    "delivery_seq": first + i + 1,
                    "event_id": ids[i - lo],
                    "endpoint_id": "we_bench",
                    "status": "succeeded",
                    "response_status": 200,
                    "response_body": "ok",
                    "retry_count": 0,
                    "duration_ms": 3,
                    "error": None,
                    "error_type": None,
                    "next_retry": None,
                    "created": old,
                }
                for i in range(lo, hi)
            ]
            await insert_rows(tx.conn, webhook_attempts, attempt_rows)
        if hi % 100_000 == 0 or hi == n:
            print(f"  filled {hi:,} events ({time.monotonic() - started:.0f} s)", flush=True)
    return time.monotonic() - started


async def settle(db: Database) -> float:
    """Leave the filled database as a long-running one would be: rows 40 days old were vacuumed
    long ago (PostgreSQL's autovacuum: hint bits, visibility map, statistics; the shared test
    server runs with autovacuum off) and the bulk load is checkpointed. Otherwise the load's own
    checkpoint (spread over minutes, begun by its WAL volume) and the first reads' hint-bit
    writes fall inside one measured phase or the other, by chance, and are the fill's, not the
    prune's. SQLite: the WAL copied into the database and truncated (no ANALYZE: Paywire never
    runs it)."""
    started = time.monotonic()
    async with db.engine.connect() as conn:
        if db.is_postgres:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in (events, webhook_deliveries, webhook_attempts):
                await conn.execute(sa.text(f"VACUUM ANALYZE {table.name}"))
            await conn.execute(sa.text("CHECKPOINT"))
        else:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.monotonic() - started


def sa_max_seq() -> Any:
    return sa.select(sa.func.max(events.c.seq))


async def count_old(db_url: str) -> int:
    """The filled rows still stored: events, deliveries and attempts older than 30 days (the
    API's writes are new; nothing else is that old)."""
    cutoff = time.time() - 30 * 86_400
    db = Database(db_url)
    try:
        async with db.read() as conn:
            counts = [
                await conn.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.created < cutoff))
                for table in (events, webhook_deliveries, webhook_attempts)
            ]
    finally:
        await db.dispose()
    return sum(int(c or 0) for c in counts)


async def writes(
    url: str,
    key: str,
    clients: int,
    until: asyncio.Future[Any] | float,
    stamped: list[tuple[float, float]] | None = None,
) -> list[float]:
    """Latencies (ms) of POST /api/customers from `clients` clients, until a time or a future;
    `stamped` also gets (monotonic start, latency) of each, for the alternating mode's windows."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}

    def over() -> bool:
        return until.done() if isinstance(until, asyncio.Future) else time.monotonic() >= until

    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def client(c: int) -> None:
            i = 0
            while not over():
                i += 1
                t0 = time.perf_counter()
                async with session.post(f"{url}/api/customers", json={"name": f"b{c}-{i}"}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append((time.perf_counter() - t0) * 1000)
                if stamped is not None:
                    stamped.append((t0, latencies[-1]))

        await asyncio.gather(*(client(c) for c in range(clients)))
    return latencies


def p(values: list[float], q: float) -> float:
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
    raise RuntimeError("server did not start")


async def one_database(name: str, db_url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    db = Database(db_url)
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    print(f"{name}: filling {args.events:,} events + deliveries + attempts", flush=True)
    filled = await fill(db, args.events, day_partition=not args.no_day_partition, attempts_only=args.attempts_only)
    old_rows = await count_old(db_url)
    print(f"  fill: {filled:.0f} s ({old_rows / filled:,.0f} rows/s)", flush=True)
    settled = await settle(db)
    await db.dispose()
    print(f"  settle (vacuum, checkpoint): {settled:.0f} s", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")}
    if db_url.startswith("postgresql"):  # the encryption key PostgreSQL requires, shared by both processes
        env["PAYWIRE_ENCRYPTION_KEY"] = generate_key()
    log = open(workdir / f"serve-{name}.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "paywire.cli.main"]
    server = subprocess.Popen(
        [*command, "serve", "--no-worker", "--port", str(args.port), "--database-url", db_url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://{HOST}:{args.port}"
    try:
        await wait_up(url)
        await writes(url, key, args.clients, time.monotonic() + 2)  # warm up
        if args.sequential:
            figures = await sequential(url, key, db_url, command, env, args)
        else:
            figures = await alternating(url, key, db_url, env, args)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    removed = old_rows - await count_old(db_url)
    figures["removed"] = removed
    print(
        f"  prune removed {removed:,} rows in {figures['prune_s']:.1f} s of pruning"
        f" ({removed / figures['prune_s']:,.0f} rows/s)",
        flush=True,
    )
    return figures


def summary(base: list[float], during: list[float], base_s: float, during_s: float) -> dict[str, float]:
    figures = {
        "base_p50": p(base, 0.5),
        "base_p99": p(base, 0.99),
        "base_n": len(base) / base_s,
        "prune_p50": p(during, 0.5),
        "prune_p99": p(during, 0.99),
        "prune_n": len(during) / during_s,
    }
    print(
        f"  without pruning: p50 {figures['base_p50']:6.2f} ms  p99 {figures['base_p99']:6.2f} ms"
        f"  ({figures['base_n']:.0f} writes/s, {base_s:.0f} s, {len(base)} writes)\n"
        f"  while pruning:   p50 {figures['prune_p50']:6.2f} ms  p99 {figures['prune_p99']:6.2f} ms"
        f"  ({figures['prune_n']:.0f} writes/s, {during_s:.0f} s, {len(during)} writes)\n"
        f"  p99 ratio {figures['prune_p99'] / figures['base_p99']:.3f},"
        f" p50 ratio {figures['prune_p50'] / figures['base_p50']:.3f}",
        flush=True,
    )
    return figures


async def sequential(
    url: str, key: str, db_url: str, command: list[str], env: dict[str, str], args: argparse.Namespace
) -> dict[str, float]:
    """The old mode (`--sequential`): one phase without, then one while `paywire prune` runs."""
    base = await writes(url, key, args.clients, time.monotonic() + args.seconds)
    pruner = await asyncio.create_subprocess_exec(
        *command,
        "prune",
        "--database-url",
        db_url,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    finished: asyncio.Future[Any] = asyncio.ensure_future(pruner.communicate())
    # The worker prunes from a process that is already up: the CLI's start-up (imports) is
    # not part of pruning, so measuring starts once the process has had time to begin.
    await asyncio.sleep(args.startup)
    started = time.monotonic()
    deadline = asyncio.ensure_future(asyncio.sleep(args.seconds))
    either: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.wait({finished, deadline}, return_when=asyncio.FIRST_COMPLETED)
    )
    during = await writes(url, key, args.clients, either)
    measured = time.monotonic() - started
    whole = finished.done() or args.whole
    if not whole:  # the window is over: the rest of the backlog is not measured
        pruner.terminate()  # SIGTERM, no handler: its open batch is rolled back by the database
    _, stderr = await finished
    prune_s = time.monotonic() - started + args.startup
    assert pruner.returncode == 0 or not whole, stderr.decode()  # -SIGTERM when stopped
    figures = summary(base, during, args.seconds, measured)
    figures["prune_s"] = prune_s
    if whole:
        print("  " + stderr.decode().strip().replace("\n", "\n  "), flush=True)
    return figures


async def alternating(
    url: str, key: str, db_url: str, env: dict[str, str], args: argparse.Namespace
) -> dict[str, float]:
    """Writers run throughout; the pruner (`--pruner` mode of this script: the worker's code, in a
    process already up) is resumed and paused so that off and on windows of `--window` seconds
    alternate, `--pairs` pairs, in the order off/on, on/off, off/on… (drift lands on both sides).
    A pause takes effect between two batches (no transaction open), acknowledged before the off
    window starts; writes begun between windows are not counted. With `--versus-src` or
    `--versus-set`, a second pruner (that code, or those settings) takes every other pair in the
    order A B B A A B B A…, against the same backlog: both compared in the same run."""
    specs = [("A", dict(env, PYTHONPATH=str(Path(args.src) / "src")) if args.src else env)]
    if args.versus_src or args.versus_set:
        other = dict(env)
        if args.versus_src:
            other["PYTHONPATH"] = str(Path(args.versus_src) / "src")
        for setting in args.versus_set:
            name, value = setting.split("=", 1)
            other[f"PAYWIRE_{name.upper()}"] = value
        specs.append(("B", other))
    pruners = []
    for _, spec_env in specs:
        pruner = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--pruner",
            db_url,
            env=spec_env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert pruner.stdout is not None
        assert (await asyncio.wait_for(pruner.stdout.readline(), 60)) == b"ready\n"  # imports done, paused
        pruners.append(pruner)

    async def send(pruner: Any, line: bytes) -> None:
        pruner.stdin.write(line)
        await pruner.stdin.drain()
        if line == b"pause\n":
            answer = await asyncio.wait_for(pruner.stdout.readline(), 30)
            assert answer == b"paused\n", answer  # b"done" would mean the backlog is gone

    stamped: list[tuple[float, float]] = []
    stop = asyncio.get_running_loop().create_future()
    writers = asyncio.ensure_future(writes(url, key, args.clients, stop, stamped))
    windows: list[tuple[int | None, float, float]] = []  # (pruner or None, start, end), perf_counter
    running: int | None = None
    pruned_s = [0.0 for _ in pruners]
    stderrs: list[bytes] = []
    try:
        for i in range(args.pairs):
            which = [0, 1, 1, 0][i % 4] % len(pruners)
            for on in (False, True) if i % 2 == 0 else (True, False):
                want = which if on else None
                if running is not None and running != want and not args.null:
                    await send(pruners[running], b"pause\n")
                if want is not None and running != want and not args.null:
                    await send(pruners[want], b"go\n")
                running = want
                t = time.perf_counter()
                await asyncio.sleep(args.window)
                windows.append((want, t, time.perf_counter()))
                if want is not None:
                    pruned_s[want] += windows[-1][2] - t
        if running is not None and not args.null:
            await send(pruners[running], b"pause\n")
    finally:
        stop.set_result(None)
        await writers
        for label, pruner in zip((label for label, _ in specs), pruners, strict=True):
            if pruner.returncode is None:
                pruner.terminate()
            _, stderr = await pruner.communicate()
            stderrs.append(stderr)
            prefix = f"  pruner {label}: "
            print(prefix + stderr.decode().strip().replace("\n", "\n" + prefix), flush=True)

    def inside(start: float, end: float) -> list[float]:
        return [ms for t0, ms in stamped if start <= t0 < end]

    print(f"  {args.pairs} pairs of {args.window:g} s windows (off/on, then on/off, ...):", flush=True)
    ratios: list[list[float]] = [[] for _ in pruners]
    for i in range(args.pairs):
        pair = windows[2 * i : 2 * i + 2]
        which = next(w for w, _, _ in pair if w is not None)
        off_ms = next(inside(s, e) for w, s, e in pair if w is None)
        on_ms = next(inside(s, e) for w, s, e in pair if w is not None)
        ratios[which].append(p(on_ms, 0.99) / p(off_ms, 0.99))
        print(
            f"    pair {i + 1} ({specs[which][0]}): p99 off {p(off_ms, 0.99):6.2f} ms ({len(off_ms)}),"
            f" on {p(on_ms, 0.99):6.2f} ms ({len(on_ms)}), ratio {ratios[which][-1]:.3f};"
            f" p50 {p(off_ms, 0.5):.2f} / {p(on_ms, 0.5):.2f} ms",
            flush=True,
        )
    base = [ms for w, s, e in windows if w is None for ms in inside(s, e)]
    base_s = sum(e - s for w, s, e in windows if w is None)
    figures: dict[str, float] = {}
    for j, (label, _) in enumerate(specs):
        during = [ms for w, s, e in windows if w == j for ms in inside(s, e)]
        removed = [int(line.split()[1]) for line in stderrs[j].decode().splitlines() if line.startswith("total ")]
        rate = f"{removed[0] / pruned_s[j]:,.0f} rows/s" if removed else "rows not reported"
        print(
            f"  pruner {label}: per-pair p99 ratios median {statistics.median(ratios[j]):.3f},"
            f" range {min(ratios[j]):.3f}-{max(ratios[j]):.3f}; removed {removed[0] if removed else '?':,}"
            f" rows in {pruned_s[j]:.0f} s on ({rate}); pooled over all windows:",
            flush=True,
        )
        figures = summary(base, during, base_s, pruned_s[j]) if j == 0 else figures
        if j:
            summary(base, during, base_s, pruned_s[j])
        if len(specs) > 1:  # against the off windows of its own pairs only
            own = [
                ms
                for i in range(args.pairs)
                for w, s, e in windows[2 * i : 2 * i + 2]
                if w is None and any(v == j for v, _, _ in windows[2 * i : 2 * i + 2])
                for ms in inside(s, e)
            ]
            print(
                f"  pruner {label}: p99 ratio against its own pairs' off windows {p(during, 0.99) / p(own, 0.99):.3f}"
            )
    figures["prune_s"] = sum(pruned_s)
    return figures


def pruner_main(db_url: str) -> None:
    """`--pruner URL`: `paywire.ops.retention.prune` with the settings' policy, as the worker runs
    it, paused and resumed by the lines "pause" / "go" on stdin. A pause waits for the batch in
    flight and its checkpoint, answers "paused" as the pruner enters its pause between batches
    (nothing held a writer could wait for), and that pause then also waits for "go". The time
    each batch, checkpoint and lock wait took is printed at the end (stderr), with the rows of
    each batch."""
    from paywire.ops import retention
    from paywire.settings import Settings

    def answer(line: bytes) -> None:
        os.write(1, line)

    resumed = asyncio.Event()
    pausing = False
    busy = False  # from a batch's start to the pause after it (its checkpoint included)
    timings: dict[str, list[float]] = {"batch": [], "checkpoint": [], "lock wait": []}  # ms each took
    sizes: dict[str, list[int]] = {}  # rows of each batch, by kind: how the batch size adapted
    last: dict[str, int] = {}

    def command() -> None:
        nonlocal pausing
        for line in os.read(0, 256).split():
            if line == b"go":
                resumed.set()
            elif line == b"pause":
                resumed.clear()
                if busy:  # answered once the batch in flight (and its checkpoint) is over
                    pausing = True
                else:
                    answer(b"paused\n")

    def timed(name: str, fn: Any) -> Any:
        async def wrapper(*a: Any, **k: Any) -> Any:
            nonlocal busy
            busy = True
            t0 = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                timings[name].append((time.perf_counter() - t0) * 1000)

        return wrapper

    async def gated_sleep(seconds: float) -> None:
        """The pause after a batch: the one place a pause can wait without the prune's own pacing
        counting it (a batch's time starts before it is called, so waiting inside it would)."""
        nonlocal busy, pausing
        busy = False
        if pausing:
            answer(b"paused\n")
            pausing = False
        await asyncio.sleep(seconds)
        await resumed.wait()

    write = retention._write  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def timed_write(db: Any) -> Any:
        t0 = time.perf_counter()  # until the batch holds the write lock (SQLite) / its own lock
        async with write(db) as conn:
            timings["lock wait"].append((time.perf_counter() - t0) * 1000)
            yield conn

    # The bench's own wrappers around the worker's code (measurement and pausing only).
    retention._write = timed_write  # type: ignore[attr-defined]
    retention._batch = timed("batch", retention._batch)  # type: ignore[attr-defined]
    retention._checkpoint = timed("checkpoint", retention._checkpoint)  # type: ignore[attr-defined]
    retention.asyncio = types.SimpleNamespace(**{**vars(asyncio), "sleep": gated_sleep})  # type: ignore[attr-defined,assignment]

    def progress(kind: str, rows: int) -> None:
        sizes.setdefault(kind, []).append(rows - last.get(kind, 0))
        last[kind] = rows

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(0, command)
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # the bench's stop: report, then exit
        db = Database(db_url, pool_size=2)
        try:
            policy = retention.Policy.from_settings(Settings(database_url=db_url))
            answer(b"ready\n")
            await resumed.wait()  # the first on window: PostgreSQL's partition drop is in it too
            result = await retention.prune(db, policy, progress=progress)
            print(f"removed {result.removed} in {result.batches} batches", file=sys.stderr)
            answer(b"done\n")
        finally:
            for name, ms in timings.items():
                if ms:
                    print(
                        f"{name}: {len(ms)}, ms p50 {statistics.median(ms):.1f}, p90 {p(ms, 0.9):.1f},"
                        f" max {max(ms):.1f}",
                        file=sys.stderr,
                    )
            print(f"total {sum(last.values())} rows removed", file=sys.stderr)
            for kind, each in sizes.items():
                print(f"{kind}: {len(each)} batches, median {statistics.median(each):g} rows", file=sys.stderr)
            await db.dispose()

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(run())


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="paywire-prune-") as tmp:
        workdir = Path(tmp)
        if args.db in ("sqlite", "both"):
            await one_database("SQLite", f"sqlite:///{workdir / 'bench.db'}", args, workdir)
        if args.db in ("postgres", "both"):
            async with scratch_database(args.pg, "paywire_prune") as pg_url:
                await one_database("PostgreSQL", pg_url, args, workdir)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pruner"]:
        pruner_main(sys.argv[2])
        sys.exit()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase (at most)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--window", type=float, default=5.0, help="alternating mode: seconds of each window")
    parser.add_argument("--pairs", type=int, default=6, help="alternating mode: off/on window pairs")
    parser.add_argument("--src", help="alternating mode: pruner A runs the paywire under DIR/src (default: installed)")
    parser.add_argument("--versus-src", help="alternating mode: a second pruner runs the paywire under DIR/src")
    parser.add_argument(
        "--versus-set", action="append", default=[], help="alternating mode: a second pruner with NAME=VALUE settings"
    )
    parser.add_argument(
        "--null", action="store_true", help="alternating mode: never resume the pruner (the ratios' noise alone)"
    )
    parser.add_argument(
        "--sequential", action="store_true", help="the old mode: --seconds without, then --seconds while pruning"
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the benchmark's own database from",
    )
    parser.add_argument("--startup", type=float, default=2.0, help="seconds `paywire prune` is given to start")
    parser.add_argument("--port", type=int, default=8952)
    parser.add_argument(
        "--whole", action="store_true", help="let the prune finish the backlog after the window (else it is stopped)"
    )
    parser.add_argument(
        "--attempts-only", action="store_true", help="fill old attempts only: what the partitioning changes, alone"
    )
    parser.add_argument(
        "--no-day-partition", action="store_true", help="PostgreSQL: old attempts go to the DEFAULT partition"
    )
    asyncio.run(main(parser.parse_args()))

"""Renewal storm: N monthly subscriptions due at the same instant, renewed at what rate.

    .venv/bin/python bench/renewals.py [--n 1000 10000 100000] [--database sqlite postgresql]
        [--path scheduler clock] [--workers 2] [--runs 1] [--statements] [--no-analyze]

For each database, path and N, on a fresh database: one subscription is created through the API
(a customer, a monthly price, a card, one webhook endpoint enabled for every event — so each
renewal writes its invoice, payment intent, events and deliveries), then copied N - 1 times in
SQL (customers, subscriptions and their renewal jobs), all due at the same instant. Then:

- `scheduler`: the subscriptions are due on the system clock and `--workers` `paywire worker`
  processes (one on SQLite) renew them; they are made due at an instant `LEAD` seconds ahead
  (the workers, polling, see it coming and wake at it), and timed from that instant to the last
  renewal's invoice. Also prints the CPU each worker, this process and (PostgreSQL) the
  database's server processes used, per renewal.
- `clock`: the subscriptions are on one test clock, and one `POST /api/test-clocks/{id}/advance`
  renews them (an advance past 20 s answers `advancing` and goes on in the background: the bench
  polls the clock until it is `ready`).

On PostgreSQL the copy is followed by `ANALYZE`, as autovacuum would have gathered statistics
for rows that came one by one; `--no-analyze` leaves the planner without them (on a server
running without autovacuum, every statement planned on default estimates).

`--no-deliveries`: the endpoint takes no event a renewal emits, so no deliveries rows are written
and the workers' dispatchers have nothing to send (the engine's own cost, without theirs).

`--statements`: instead, the due subscriptions are renewed in this process (`scheduler.run_due`)
and the SQL statements sent are counted (an engine hook): statements per renewal, the time, and
the CPU time of this process per renewal (all its threads: on SQLite that includes the
database's own work; on a loaded machine a steadier measure of the engine's cost than the time).
`--profile FILE` with it: a cProfile of the renewals (this thread's) in FILE.sqlite, FILE.postgresql.

The webhook endpoint points at a closed port: deliveries rows are written (and fail once, then
back off), no receiver competes for the CPU. Prints renewals/s and ms per renewal for each N, and
the cost at the largest N against the smallest (flat: ~1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, die_with_parent

from paywire import keys
from paywire.app import PaywireApp
from paywire.billing import scheduler
from paywire.billing.scheduler import run_due
from paywire.db.schema import billing_jobs, customers, invoices, subscriptions, test_clocks
from paywire.ids import new_id
from paywire.secrets_at_rest import generate_key

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z, where the test clock starts
DAY = 86_400
CHUNK = 2_000
LEAD = 3  # s: the scheduler path's renewals are made due this far ahead of the timed start
POLL = 0.02  # s between the scheduler path's looks for the last renewal (its end is known to that)
NOT_RENEWAL = "customer.subscription.created"  # an event type no renewal emits (--no-deliveries)


async def _template(client: httpx.AsyncClient, clock_id: str | None, deliveries: bool = True) -> str:
    product = (await client.post("/api/products", json={"name": "Plan"})).json()
    price = await client.post(
        "/api/prices",
        json={
            "product_id": product["id"],
            "unit_amount": "10.00",
            "currency": "usd",
            "recurring": {"interval": "month"},
        },
    )
    endpoint = await client.post(
        "/api/webhook-endpoints",
        json={
            "url": "http://127.0.0.1:9/closed",
            "enabled_events": ["*"] if deliveries else ["customer.subscription.created"],
        },
    )
    endpoint.raise_for_status()
    customer = (await client.post("/api/customers", json={"test_clock_id": clock_id} if clock_id else {})).json()
    sub = await client.post(
        "/api/subscriptions",
        json={
            "customer_id": customer["id"],
            "items": [{"price_id": price.json()["id"]}],
            "default_payment_method": "pm_card_visa",
        },
    )
    sub.raise_for_status()
    return str(sub.json()["id"])


async def _copy(app: PaywireApp, sub_id: str, n: int, due: int, analyze: bool = True) -> None:
    """N subscriptions like `sub_id` (each with its own customer), their renewal all at `due`;
    `analyze`: then gather PostgreSQL's statistics, as autovacuum does for a database whose rows
    came one by one (this server runs without it: without statistics the planner reads the
    batch's lookups by status through every pending job, a cost per renewal that grows with N)."""
    async with app.db.transaction() as tx:
        conn = tx.conn
        sub = dict((await conn.execute(sa.select(subscriptions).where(subscriptions.c.id == sub_id))).mappings().one())
        cus = dict(
            (await conn.execute(sa.select(customers).where(customers.c.id == sub["customer_id"]))).mappings().one()
        )
        pending = sa.and_(billing_jobs.c.object_id == sub_id, billing_jobs.c.status == "pending")
        job = dict((await conn.execute(sa.select(billing_jobs).where(pending))).mappings().one())
        start = sub["current_period_start"]
        await conn.execute(subscriptions.update().where(subscriptions.c.id == sub_id).values(current_period_end=due))
        await conn.execute(billing_jobs.update().where(billing_jobs.c.seq == job["seq"]).values(due=due))
    for offset in range(0, n - 1, CHUNK):
        rows_c, rows_s, rows_j = [], [], []
        for _ in range(min(CHUNK, n - 1 - offset)):
            cid, sid = new_id("cus"), new_id("sub")
            rows_c.append({**{k: v for k, v in cus.items() if k != "seq"}, "id": cid})
            rows_s.append(
                {
                    **{k: v for k, v in sub.items() if k != "seq"},
                    "id": sid,
                    "customer_id": cid,
                    "current_period_start": start,
                    "current_period_end": due,
                }
            )
            rows_j.append({**{k: v for k, v in job.items() if k != "seq"}, "object_id": sid, "due": due})
        async with app.db.transaction() as tx:
            await tx.conn.execute(customers.insert(), rows_c)
            await tx.conn.execute(subscriptions.insert(), rows_s)
            await tx.conn.execute(billing_jobs.insert(), rows_j)
    if analyze and app.db.engine.dialect.name == "postgresql":
        async with app.db.transaction() as tx:
            await tx.conn.execute(sa.text("ANALYZE"))


async def _renewed(app: PaywireApp) -> int:
    async with app.db.read() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(invoices).where(invoices.c.billing_reason == "subscription_cycle")
        )
    return int(count or 0)


async def _wait_renewed(app: PaywireApp, n: int, base_seq: int) -> None:
    """Until all N renewals' invoices are committed, looking every `POLL` s: a read of the
    invoices' last `seq` (an index's end, cheap at any N) until N invoices may be there, then the
    count (another worker's batch with lower `seq`s may not have committed yet). The bench's
    looking shares the CPU with the workers: ~1 ms of CPU a look."""
    while True:
        async with app.db.read() as conn:
            last = int(await conn.scalar(sa.select(sa.func.max(invoices.c.seq))) or 0)
        if last - base_seq >= n and await _renewed(app) >= n:
            return
        await asyncio.sleep(POLL)


async def _backends(app: PaywireApp) -> list[int]:
    """The PostgreSQL server processes serving this run's database (empty on SQLite)."""
    if app.db.engine.dialect.name != "postgresql":
        return []
    async with app.db.read() as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        return [int(pid) for pid in (await conn.execute(sa.text(query))).scalars()]


def _cpu(procs: list[subprocess.Popen[bytes]], backends: list[int], since: dict[str, Any] | None = None) -> Any:
    """CPU seconds so far of each worker, this bench process and the database's server processes;
    with `since`: used since then (by the server processes present at either end)."""
    now = {f"worker {i}": cpu_seconds(p.pid) for i, p in enumerate(procs)}
    now["bench"] = cpu_seconds()
    pids = {pid: cpu_seconds(pid) for pid in backends}
    if since is None:
        return {"procs": now, "pids": pids}
    used = {k: v - since["procs"][k] for k, v in now.items()}
    if backends:
        used["server"] = sum(v - since["pids"].get(pid, 0.0) for pid, v in pids.items())
    return used


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "paywire.cli.main", "worker", "--database-url", url]
    env = {**os.environ, "PAYWIRE_WEBHOOK_RETRY_SCHEDULE": "3600"}
    out = open(log, "wb")  # noqa: SIM115
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


async def run_once(
    url: str, path: str, n: int, workers: int, logs: Path, deliveries: bool = True, analyze: bool = True
) -> dict[str, Any]:
    app = PaywireApp(url, run_worker=False)
    await app.start()
    async with app.db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    transport = httpx.ASGITransport(app=app.api)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            clock_id = None
            if path == "clock":
                clock_id = (await client.post("/api/test-clocks", json={"frozen_time": T0})).json()["id"]
            sub_id = await _template(client, clock_id, deliveries)
            async with app.db.read() as conn:
                base_seq = int(await conn.scalar(sa.select(sa.func.max(invoices.c.seq))) or 0)
            setup = time.perf_counter()
            if path == "clock":
                due = T0 + 31 * DAY
                await _copy(app, sub_id, n, due, analyze)
                print(f"    set up {n} in {time.perf_counter() - setup:.1f} s", flush=True)
                started = time.perf_counter()
                answer = await client.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": due + DAY})
                answer.raise_for_status()
                first_answer = time.perf_counter() - started
                while True:
                    async with app.db.read() as conn:
                        status = await conn.scalar(sa.select(test_clocks.c.status).where(test_clocks.c.id == clock_id))
                    if status == "ready":
                        break
                    await asyncio.sleep(0.2)
                elapsed = time.perf_counter() - started
            else:
                far = int(time.time()) + 365 * DAY  # not due until the workers run
                await _copy(app, sub_id, n, far, analyze)
                print(f"    set up {n} in {time.perf_counter() - setup:.1f} s", flush=True)
                for i in range(workers):
                    procs.append(_worker(url, logs / f"worker-{i}.log"))
                await asyncio.sleep(4)  # started and migrated
                for proc in procs:
                    assert proc.poll() is None, (logs / "worker-0.log").read_text()
                # Due LEAD seconds from now, as a storm's renewals are known ahead: every worker
                # reads the new due instant on its next poll and wakes at it (timed from there).
                # Made due "now" instead, the run would also time the workers' poll interval
                # (0-1 s), a wait that renewals coming due as time passes do not have.
                due = int(time.time()) + LEAD
                async with app.db.transaction() as tx:
                    await tx.conn.execute(subscriptions.update().values(current_period_end=due))
                    await tx.conn.execute(
                        billing_jobs.update().where(billing_jobs.c.status == "pending").values(due=due)
                    )
                await asyncio.sleep(max(0.0, due - time.time()))
                started = time.perf_counter()
                cpu = _cpu(procs, await _backends(app))
                first_answer = 0.0
                await _wait_renewed(app, n, base_seq)
                elapsed = time.perf_counter() - started
                used = _cpu(procs, await _backends(app), cpu)
        renewed = await _renewed(app)
        assert renewed == n, f"{renewed} renewed of {n}"
        result: dict[str, Any] = {
            "elapsed": elapsed,
            "rate": n / elapsed,
            "ms": 1000 * elapsed / n,
            "answer": first_answer,
        }
        if path == "scheduler":
            result["cpu"] = {k: 1000 * v / n for k, v in used.items()}  # ms of CPU per renewal
        return result
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        await app.stop()


async def count_statements(url: str, n: int, profile: str | None = None, analyze: bool = True) -> dict[str, Any]:
    """Renew N due subscriptions in this process, counting the statements sent to the database;
    `profile`: also write a cProfile of the renewals (this thread's) to that file."""
    app = PaywireApp(url, run_worker=False)
    await app.start()
    try:
        async with app.db.transaction() as tx:
            key = await keys.create_key(tx.conn, livemode=False, now=time.time())
        transport = httpx.ASGITransport(app=app.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            sub_id = await _template(client, None)
        now = int(time.time())
        await _copy(app, sub_id, n, now, analyze)
        count = [0]

        def counted(*_: Any) -> None:
            count[0] += 1

        sa.event.listen(app.db.engine.sync_engine, "before_cursor_execute", counted)
        profiler = cProfile.Profile() if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        ran = await run_due(app.db, app.billing)
        if profiler is not None:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile)
        sa.event.remove(app.db.engine.sync_engine, "before_cursor_execute", counted)
        assert await _renewed(app) == n, f"{await _renewed(app)} renewed of {n} ({ran} jobs ran)"
        return {
            "elapsed": elapsed,
            "rate": n / elapsed,
            "ms": 1000 * elapsed / n,
            "cpu_ms": 1000 * cpu / n,
            "statements": count[0] / n,
        }
    finally:
        await app.stop()


async def _fresh(database: str, tmp: str, pg: str) -> tuple[str, Any]:
    if database == "sqlite":
        return f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:6]}.db", None
    name = f"paywire_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return pg.rsplit("/", 1)[0] + "/" + name, name


async def _drop(pg: str, name: str | None) -> None:
    if name is not None:
        admin = await asyncpg.connect(pg)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--path", nargs="+", default=["scheduler", "clock"])
    parser.add_argument("--workers", type=int, default=2, help="paywire worker processes on PostgreSQL")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--statements", action="store_true", help="count statements per renewal, in-process")
    parser.add_argument("--batch", type=int, nargs="+", help="with --statements: these scheduler batch sizes")
    parser.add_argument("--profile", help="with --statements: write a cProfile of the renewals to this file")
    parser.add_argument(
        "--no-deliveries", action="store_true", help="the endpoint takes no renewal event: no deliveries rows"
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: no ANALYZE after the copy (the planner without statistics)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", generate_key())  # PostgreSQL needs one; workers inherit it
    if args.statements:
        with tempfile.TemporaryDirectory() as tmp:
            for database in args.database:
                for n, batch in itertools.product(args.n, args.batch or [scheduler.BATCH]):
                    scheduler.BATCH = batch
                    url, name = await _fresh(database, tmp, args.postgres)
                    try:
                        profile = f"{args.profile}.{database}" if args.profile else None
                        result = await count_statements(url, n, profile, not args.no_analyze)
                    finally:
                        await _drop(args.postgres, name)
                    print(
                        f"  {database:<10} N={n:>7} batch {batch:>4}: {result['statements']:.2f} statements "
                        f"per renewal, {result['rate']:.0f} renewals/s, {result['ms']:.3f} ms each (in-process; "
                        f"{result['cpu_ms']:.3f} ms of this process's CPU each)",
                        flush=True,
                    )
        return
    results: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for database in args.database:
            for path in args.path:
                workers = 1 if database == "sqlite" else args.workers
                for n in args.n:
                    for run in range(args.runs):
                        url, name = await _fresh(database, tmp, args.postgres)
                        print(f"  {database} {path} N={n} run {run + 1} ...", flush=True)
                        try:
                            result = await run_once(
                                url, path, n, workers, Path(tmp), not args.no_deliveries, not args.no_analyze
                            )
                        finally:
                            await _drop(args.postgres, name)
                        cpu = ", ".join(f"{k} {v:.3f}" for k, v in result.get("cpu", {}).items())
                        print(
                            f"    {result['rate']:.0f} renewals/s, {result['ms']:.3f} ms each "
                            f"({result['elapsed']:.1f} s; first answer {result['answer']:.2f} s; "
                            f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
                            + (f"\n    ms of CPU per renewal: {cpu}" if cpu else ""),
                            flush=True,
                        )
                        results.setdefault((database, path), {}).setdefault(n, []).append(result)
    print("\nrenewals per second (median [min-max] of runs), ms per renewal, cost vs the smallest N")
    for (database, path), by_n in results.items():
        base = statistics.median(r["ms"] for r in by_n[min(by_n)])
        for n, runs in sorted(by_n.items()):
            rates = [r["rate"] for r in runs]
            ms = statistics.median(r["ms"] for r in runs)
            workers = f", {1 if database == 'sqlite' else args.workers} worker(s)" if path == "scheduler" else ""
            print(
                f"  {database:<10} {path:<9}{workers:<13} N={n:>7}: {statistics.median(rates):>7.0f}/s "
                f"[{min(rates):.0f}-{max(rates):.0f}]  {ms:.3f} ms  x{ms / base:.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())

"""Soak: mixed billing activity through a real `paywire serve`, three endpoints, a durable EventBus.

    .venv/bin/python bench/soak.py [--minutes 5] [--database sqlite|postgres] [--clients 4]

A `paywire serve` subprocess (API, dispatcher and scheduler in one process) gets `--clients`
concurrent API clients for `--minutes`: checkouts (one-time and subscription, some declined
first), subscriptions on test clocks renewed by advancing the clock a month, and refunds. Three
endpoints are enabled for `*`, all on 127.0.0.1: healthy (the verifying receiver of
`bench/delivery.py`), flaky (answers 500 to a seeded 30 % of requests) and dead (connection
refused, or never answering with `--dead hang`). A durable EventBus consumer
(`EventBus.connect(..., name="soak")`) runs in a thread and is restarted half-way through.

Retries use a short schedule (`PAYWIRE_WEBHOOK_RETRY_SCHEDULE`, `--retry-schedule`). Printed:
events/s, deliveries/s, p50/p99 latency (API response of the call that caused an event → receipt
at the healthy endpoint; the response comes just after the commit, so this is commit → receipt
minus the response's own way back), the server's peak RSS and the queue depth every `--sample`
seconds. After activity stops and a bounded drain, the audit: every event created was received
by the healthy endpoint, acknowledged by the flaky one, and seen by the EventBus consumer — zero
lost. The exit status is non-zero when the audit fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import delivery as bench  # bench/delivery.py: the verifying receiver and its client
import httpx
import sqlalchemy as sa
from aiohttp import web
from pgcluster import PgCluster
from procstat import die_with_parent, memory_mb
from scratch_database import create_pg_database, drop_pg_database

from paywire import EventBus
from paywire.db.engine import Database
from paywire.db.schema import (
    billing_jobs,
    events,
    invoices,
    payment_intents,
    test_clocks,
    webhook_attempts,
    webhook_deliveries,
)
from paywire.events.event import Event
from paywire.webhooks import verify

HOST = bench.HOST
T0 = 1_798_761_600  # 2027-01-01T00:00:00Z: where every test clock starts
MONTH = 31 * 86_400  # one advance: at least one monthly renewal
FLAKY_RATE = 0.3

# --- the flaky receiver (its own process) ------------------------------------------------------


def run_flaky_receiver(port: int, secret: str, seed: int) -> None:
    """Verifies every request, answers 500 to a seeded FLAKY_RATE of them; `/stats`, `/times` as
    the healthy receiver (counting acknowledged events only)."""
    rng = random.Random(seed)
    state: dict[str, Any] = {"times": {}, "bad": 0, "dupes": 0, "refused": 0}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify(body, request.headers, secret)
        except Exception:
            state["bad"] += 1
            return web.Response(status=400)
        if rng.random() < FLAKY_RATE:
            state["refused"] += 1
            return web.Response(status=500, text="flaky")
        if event.id in state["times"]:
            state["dupes"] += 1
        state["times"][event.id] = time.time()
        return web.Response(text="ok")

    async def stats(_request: web.Request) -> web.Response:
        times = list(state["times"].values())
        return web.json_response(
            {
                "count": len(times),
                "bad": state["bad"],
                "dupes": state["dupes"],
                "refused": state["refused"],
                "first": min(times, default=0),
                "last": max(times, default=0),
            }
        )

    async def all_times(_request: web.Request) -> web.Response:
        return web.json_response(state["times"])

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/times", all_times)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# --- the open event streams (their own process) -------------------------------------------------


def id_hash(event_id: str) -> int:
    """A 64-bit hash of an event id: a stream's ids are audited by their count and hash sum."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


async def hold_streams(url: str, key: str, n: int) -> None:
    """Hold `n` `GET /api/events/stream` connections, each reconnecting with `Last-Event-ID` when
    cut off. Prints "ready" once all are open; on stdin EOF, one JSON line per stream: its start,
    the count and hash sum (mod 2**64) of the ids it got, its reconnects and refused reconnects.
    Each stream keeps only these, so 200 streams of 100,000 events each fit in memory."""
    import aiohttp

    blank: dict[str, Any] = {"start": None, "count": 0, "sum": 0, "reconnects": 0, "errors": 0}
    stats = [dict(blank) for _ in range(n)]
    opened = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)  # heartbeat every 15 s
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
    ) as session:

        async def one(i: int) -> None:
            nonlocal opened
            st = stats[i]
            last: str | None = None
            first = True
            while True:
                headers = {"Last-Event-ID": last} if last else {}
                try:
                    async with session.get(f"{url}/api/events/stream", headers=headers) as response:
                        if response.status != 200:
                            st["errors"] += 1
                            await response.read()
                            await asyncio.sleep(0.5)
                            continue
                        async for line in response.content:
                            if line.startswith(b"id: "):
                                event_id = line[4:].strip().decode()
                                st["count"] += 1
                                st["sum"] = (st["sum"] + id_hash(event_id)) % 2**64
                                last = event_id
                            elif first and line.startswith(b'data: {"last_event_id"'):
                                st["start"] = json.loads(line[6:])["last_event_id"]
                                last = st["start"]
                                first = False
                                opened += 1
                except (aiohttp.ClientError, TimeoutError):
                    pass
                st["reconnects"] += 1
                await asyncio.sleep(0.2)

        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a gentle ramp: the accept queue is finite
        while opened < n:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for st in stats:
            print(json.dumps(st), flush=True)
        for t in tasks:
            t.cancel()


# --- the durable EventBus consumer (a thread with its own event loop) ---------------------------


class Consumer:
    """`EventBus.connect(url, name="soak")` in a thread; records the first receipt of each event."""

    def __init__(self, url: str, key: str, seen: dict[str, float]) -> None:
        self.url, self.key, self.seen = url, key, seen
        self.dupes = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="soak-consumer", daemon=True)

    async def _main(self) -> None:
        bus = EventBus.connect(self.url, api_key=self.key, name="soak")

        async def handle(event: Event) -> None:
            if event.id in self.seen:
                self.dupes += 1
            else:
                self.seen[event.id] = time.time()

        bus.subscribe(handle)
        self._loop = asyncio.get_running_loop()
        await bus.start()
        self._task = asyncio.current_task()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await bus.run_async()  # cancelled by `stop`: stops the bus and saves its position

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the EventBus consumer did not start")

    def stop(self, timeout: float = 30) -> None:
        task, loop = self._task, self._loop
        if task is not None and loop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout)


# --- billing activity through the API --------------------------------------------------------------


@dataclass
class Activity:
    """What the clients did: request id → response time, calls per kind, pools to draw from."""

    rng: random.Random
    responded: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    one_time: list[str] = field(default_factory=list)  # price ids
    monthly: list[str] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)  # payment intents not yet refunded
    idle_clocks: list[tuple[str, int]] = field(default_factory=list)  # (clock id, frozen time)

    async def call(self, api: httpx.AsyncClient, kind: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = await api.request(method, path, **kw)
        request_id = response.headers.get("request-id")
        if request_id:
            self.responded[request_id] = time.time()
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if response.status_code >= 300 and response.status_code != 402:  # 402: a declined card
            key = f"{kind} {response.status_code}"
            self.errors[key] = self.errors.get(key, 0) + 1
            return {}
        body: dict[str, Any] = response.json()
        return body


async def set_up_prices(api: httpx.AsyncClient, act: Activity) -> None:
    for amount in ("9.99", "25.00", "120.00"):
        product = await act.call(api, "setup", "POST", "/api/products", json={"name": f"Item {amount}"})
        price = await act.call(
            api,
            "setup",
            "POST",
            "/api/prices",
            json={"product_id": product["id"], "unit_amount": amount, "currency": "usd"},
        )
        act.one_time.append(price["id"])
        plan = await act.call(
            api,
            "setup",
            "POST",
            "/api/prices",
            json={
                "product_id": product["id"],
                "unit_amount": amount,
                "currency": "usd",
                "recurring": {"interval": "month"},
            },
        )
        act.monthly.append(plan["id"])


async def checkout_payment(api: httpx.AsyncClient, act: Activity) -> None:
    items = [{"price_id": act.rng.choice(act.one_time), "quantity": act.rng.randint(1, 3)}]
    session = await act.call(
        api, "checkout", "POST", "/api/checkout-sessions", json={"mode": "payment", "line_items": items}
    )
    if not session:
        return
    confirm = f"/api/checkout-sessions/{session['id']}/confirm"
    if act.rng.random() < 0.1:  # declined first, then paid with another card
        await act.call(api, "checkout", "POST", confirm, json={"payment_method": "pm_card_visa_chargeDeclined"})
    paid = await act.call(api, "checkout", "POST", confirm, json={"payment_method": "pm_card_visa"})
    if paid.get("payment_intent_id"):
        act.paid.append(paid["payment_intent_id"])


async def refund(api: httpx.AsyncClient, act: Activity) -> None:
    if not act.paid:
        return await checkout_payment(api, act)
    intent = act.paid.pop(act.rng.randrange(len(act.paid)))
    body = {"amount": "1.00"} if act.rng.random() < 0.5 else {}
    await act.call(api, "refund", "POST", f"/api/payment-intents/{intent}/refund", json=body)


async def clock_subscription(api: httpx.AsyncClient, act: Activity) -> None:
    clock = await act.call(api, "subscribe", "POST", "/api/test-clocks", json={"frozen_time": T0})
    customer = await act.call(api, "subscribe", "POST", "/api/customers", json={"test_clock_id": clock["id"]})
    items = [{"price_id": act.rng.choice(act.monthly)}]
    if act.rng.random() < 0.5:
        await act.call(
            api,
            "subscribe",
            "POST",
            "/api/subscriptions",
            json={"customer_id": customer["id"], "items": items, "default_payment_method": "pm_card_visa"},
        )
    else:
        session = await act.call(
            api,
            "subscribe",
            "POST",
            "/api/checkout-sessions",
            json={"mode": "subscription", "customer_id": customer["id"], "line_items": items},
        )
        await act.call(
            api,
            "subscribe",
            "POST",
            f"/api/checkout-sessions/{session['id']}/confirm",
            json={"payment_method": "pm_card_visa"},
        )
    act.idle_clocks.append((clock["id"], T0))


async def renew(api: httpx.AsyncClient, act: Activity) -> None:
    if not act.idle_clocks:
        return await clock_subscription(api, act)
    clock_id, at = act.idle_clocks.pop(act.rng.randrange(len(act.idle_clocks)))  # one client per clock
    await act.call(api, "renew", "POST", f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": at + MONTH})
    act.idle_clocks.append((clock_id, at + MONTH))


Scenario = Callable[[httpx.AsyncClient, Activity], Awaitable[None]]
MIX: list[tuple[Scenario, float]] = [
    (checkout_payment, 0.35),
    (refund, 0.15),
    (clock_subscription, 0.15),
    (renew, 0.35),
]


async def client_loop(api: httpx.AsyncClient, act: Activity, until: float) -> None:
    scenarios, weights = zip(*MIX, strict=True)
    while time.monotonic() < until:
        scenario = act.rng.choices(scenarios, weights)[0]
        try:
            await scenario(api, act)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            key = f"{scenario.__name__} {type(exc).__name__}"
            act.errors[key] = act.errors.get(key, 0) + 1
            await asyncio.sleep(0.1)


# --- sampling the queue ------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    events: int
    pending: dict[str, int]
    attempts: int
    succeeded: int
    rss: float


class Sampler:
    def __init__(self, db: Database, endpoints: dict[str, str], server_pid: int, start_seq: int) -> None:
        self.db, self.endpoints, self.pid, self.start_seq = db, endpoints, server_pid, start_seq
        self.samples: list[Sample] = []
        self.peak_rss = 0.0
        self.started = time.monotonic()

    async def take(self) -> Sample | None:
        try:
            return await self._take()
        except Exception as exc:  # the database restarting: skip this sample
            print(f"{time.monotonic() - self.started:7.0f}  (no sample: {type(exc).__name__})", flush=True)
            return None

    async def _take(self) -> Sample:
        d, a = webhook_deliveries, webhook_attempts
        async with self.db.read() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).where(events.c.seq > self.start_seq))
            rows = await conn.execute(
                sa.select(d.c.endpoint_id, sa.func.count()).where(d.c.status == "pending").group_by(d.c.endpoint_id)
            )
            by_id = {endpoint_id: int(n) for endpoint_id, n in rows}
            attempts = (await conn.execute(sa.select(a.c.status, sa.func.count()).group_by(a.c.status))).all()
        by_status = {status: int(n) for status, n in attempts}
        rss, self.peak_rss = memory_mb(self.pid)
        sample = Sample(
            t=time.monotonic() - self.started,
            events=int(count or 0),
            pending={name: by_id.get(endpoint_id, 0) for name, endpoint_id in self.endpoints.items()},
            attempts=sum(by_status.values()),
            succeeded=by_status.get("succeeded", 0),
            rss=rss,
        )
        self.samples.append(sample)
        p = sample.pending
        print(
            f"{sample.t:7.0f} {sample.events:8d} {sample.attempts:9d} {p['healthy']:8d} {p['flaky']:6d} {p['dead']:6d}"
            f" {rss:7.1f}",
            flush=True,
        )
        return sample

    async def run(self, every: float, stop: asyncio.Event) -> None:
        print(f"{'t (s)':>7} {'events':>8} {'attempts':>9} {'pending:':>8} {'flaky':>6} {'dead':>6} {'RSS MB':>7}")
        print(f"{'':>26} {'healthy':>8}")
        while not stop.is_set():
            await self.take()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


# --- processes and set-up ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def refusing_socket() -> socket.socket:
    """A bound port that never listens: connecting to it is refused."""
    s = socket.socket()
    s.bind((HOST, 0))
    return s


def create_key(url: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "paywire.cli.main", "keys", "create", "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


def server_env(retry_schedule: str, timeout: float) -> dict[str, str]:
    return {**os.environ, "PAYWIRE_WEBHOOK_RETRY_SCHEDULE": retry_schedule, "PAYWIRE_WEBHOOK_TIMEOUT": str(timeout)}


def start_workers(url: str, count: int, workdir: Path, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log = open(workdir / f"worker{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "paywire.cli.main", "worker", "--database-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )
        )
    return procs


def start_server(
    url: str, port: int, workdir: Path, retry_schedule: str, timeout: float, *, workers: int = 0
) -> subprocess.Popen[bytes]:
    """`paywire serve` (with its own worker), or `serve --no-worker` when `workers` run beside it."""
    env = server_env(retry_schedule, timeout)
    log = open(workdir / "server.log", "wb")  # noqa: SIM115
    no_worker = ["--no-worker"] if workers else []
    return subprocess.Popen(
        [sys.executable, "-m", "paywire.cli.main", "serve", *no_worker, "--port", str(port), "--database-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=die_with_parent,
    )


async def wait_http(client: httpx.AsyncClient, path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get(path)).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.base_url}{path} did not come up")
        await asyncio.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def create_endpoint(api: httpx.AsyncClient, url: str, description: str) -> dict[str, Any]:
    response = await api.post(
        "/api/webhook-endpoints", json={"url": url, "enabled_events": ["*"], "description": description}
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# --- the audit and the figures -----------------------------------------------------------------------


@dataclass
class Received:
    healthy: dict[str, float]
    flaky: dict[str, float]
    consumer: dict[str, float]


async def created_events(db: Database, start_seq: int) -> dict[str, str | None]:
    """Event id → request id of every event created since the consumer started."""
    async with db.read() as conn:
        rows = await conn.execute(sa.select(events.c.id, events.c.request_id).where(events.c.seq > start_seq))
        return {event_id: request_id for event_id, request_id in rows}


async def final_states(db: Database, endpoints: dict[str, str]) -> dict[str, dict[str, int]]:
    d = webhook_deliveries
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(d.c.endpoint_id, d.c.status, sa.func.count()).group_by(d.c.endpoint_id, d.c.status)
        )
        by_id: dict[str, dict[str, int]] = {}
        for endpoint_id, status, n in rows:
            by_id.setdefault(endpoint_id, {})[status] = int(n)
    return {name: by_id.get(endpoint_id, {}) for name, endpoint_id in endpoints.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def latencies_ms(created: dict[str, str | None], responded: dict[str, float], healthy: dict[str, float]) -> list[float]:
    return [
        (healthy[event_id] - responded[request_id]) * 1000
        for event_id, request_id in created.items()
        if request_id in responded and event_id in healthy
    ]


def jobs_due(now: float) -> sa.Select[Any]:
    """Billing jobs still pending though due: on their test clock's time, or on the wall clock."""
    j, c = billing_jobs, test_clocks
    on_clock = sa.select(c.c.frozen_time).where(c.c.id == j.c.test_clock_id).scalar_subquery()
    return sa.select(sa.func.count()).where(
        j.c.status == "pending",
        sa.or_(
            sa.and_(j.c.test_clock_id.is_(None), j.c.due <= now),
            sa.and_(j.c.test_clock_id.is_not(None), j.c.due <= on_clock),
        ),
    )


async def billing_audit(db: Database) -> dict[str, int]:
    """Every job done, exactly once: the counts of what would be wrong (all 0 when it passed)."""
    i, p = invoices, payment_intents
    async with db.read() as conn:
        failed = await conn.scalar(sa.select(sa.func.count()).where(billing_jobs.c.status == "failed"))
        due = await conn.scalar(jobs_due(time.time()))
        advancing = await conn.scalar(sa.select(sa.func.count()).where(test_clocks.c.status != "ready"))
        cycles = (
            sa.select(i.c.subscription_id, i.c.period_start)
            .where(i.c.billing_reason == "subscription_cycle")
            .group_by(i.c.subscription_id, i.c.period_start)
            .having(sa.func.count() > 1)
            .subquery()
        )
        twice = await conn.scalar(sa.select(sa.func.count()).select_from(cycles))
        charged = (
            sa.select(i.c.subscription_id, i.c.period_start)
            .select_from(p.join(i, i.c.id == p.c.invoice_id))
            .where(p.c.status == "succeeded", i.c.billing_reason == "subscription_cycle")
            .group_by(i.c.subscription_id, i.c.period_start)
            .having(sa.func.count() > 1)
            .subquery()
        )
        charged_twice = await conn.scalar(sa.select(sa.func.count()).select_from(charged))
        renewals = await conn.scalar(sa.select(sa.func.count()).where(i.c.billing_reason == "subscription_cycle"))
        jobs_done = await conn.scalar(sa.select(sa.func.count()).where(billing_jobs.c.status == "done"))
    return {
        "jobs failed": int(failed or 0),
        "jobs due, not run": int(due or 0),
        "clocks not ready": int(advancing or 0),
        "periods invoiced twice": int(twice or 0),
        "periods charged twice": int(charged_twice or 0),
        "_renewal invoices": int(renewals or 0),
        "_jobs done": int(jobs_done or 0),
    }


def stream_audit(results: list[dict[str, Any]], ids_after: dict[str | None, list[str]]) -> dict[str, int]:
    """Each stream got every event after its start exactly once (count and hash sum agree)."""
    bad = {"streams missing events": 0, "streams with duplicates": 0, "streams with other ids": 0}
    for st in results:
        expected = ids_after.get(st["start"], [])
        total = sum(id_hash(e) for e in expected) % 2**64
        if st["count"] < len(expected):
            bad["streams missing events"] += 1
        elif st["count"] > len(expected):
            bad["streams with duplicates"] += 1
        elif st["sum"] != total:
            bad["streams with other ids"] += 1
    return bad


async def ids_after(db: Database, starts: set[str | None]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    async with db.read() as conn:
        for start in starts:
            seq = 0
            if start:
                seq = int(await conn.scalar(sa.select(events.c.seq).where(events.c.id == start)) or 0)
            out[start] = list((await conn.execute(sa.select(events.c.id).where(events.c.seq > seq))).scalars())
    return out


async def restart_database(cluster: PgCluster, at: list[float], started: float, log: list[str]) -> None:
    """Restart the private PostgreSQL at each of `at` (seconds after `started`)."""
    for t in at:
        await asyncio.sleep(max(0.0, started + t - time.monotonic()))
        try:
            took = await asyncio.to_thread(cluster.restart)
            line = f"PostgreSQL restarted at {time.monotonic() - started:.0f} s (took {took:.1f} s)"
        except Exception as exc:
            line = f"PostgreSQL restart at {time.monotonic() - started:.0f} s FAILED: {exc}"
        log.append(line)
        print(line, flush=True)


# --- main ---------------------------------------------------------------------------------------------


async def drain_until_complete(
    db: Database, start_seq: int, endpoint_ids: list[str], seen: dict[str, float], timeout: float
) -> float:
    """Wait (bounded) until nothing is pending for `endpoint_ids`, no due job or advance is left, and
    the consumer saw every event."""
    d = webhook_deliveries
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            async with db.read() as conn:
                n = int(await conn.scalar(sa.select(sa.func.count()).where(events.c.seq > start_seq)) or 0)
                left = await conn.scalar(
                    sa.select(sa.func.count()).where(d.c.status == "pending", d.c.endpoint_id.in_(endpoint_ids))
                )
                jobs_left = await conn.scalar(jobs_due(time.time()))
                # A clock whose advance an outage cut off is ready again when its 30 s lease ends.
                jobs_left += await conn.scalar(sa.select(sa.func.count()).where(test_clocks.c.status != "ready"))
        except Exception:  # (a restart just before the end)
            await asyncio.sleep(1)
            continue
        if not left and not jobs_left and len(seen) >= n:
            break
        await asyncio.sleep(1)
    return time.monotonic() - started


async def run(args: argparse.Namespace, workdir: Path, url: str, cluster: PgCluster | None = None) -> int:
    server_port, healthy_port, flaky_port = free_port(), free_port(), free_port()
    key = create_key(url)
    server = start_server(url, server_port, workdir, args.retry_schedule, args.timeout, workers=args.workers)
    workers = start_workers(url, args.workers, workdir, server_env(args.retry_schedule, args.timeout))
    holder: subprocess.Popen[str] | None = None
    restarts: list[str] = []
    server_url = f"http://{HOST}:{server_port}"
    dead_socket = refusing_socket()
    procs: list[subprocess.Popen[bytes]] = []
    consumer: Consumer | None = None
    db = Database(url, pool_size=2)
    api = httpx.AsyncClient(
        base_url=server_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=args.clients + 2),
    )
    healthy = bench.ReceiverClient(f"http://{HOST}:{healthy_port}")
    flaky = bench.ReceiverClient(f"http://{HOST}:{flaky_port}")
    try:
        await wait_http(api, "/api/events")
        dead_url = (
            f"http://{HOST}:{healthy_port}/dead"
            if args.dead == "hang"
            else f"http://{HOST}:{dead_socket.getsockname()[1]}/hook"
        )
        made = {
            "healthy": await create_endpoint(api, f"http://{HOST}:{healthy_port}/hook", "soak: healthy"),
            "flaky": await create_endpoint(api, f"http://{HOST}:{flaky_port}/hook", "soak: flaky"),
            "dead": await create_endpoint(api, dead_url, f"soak: dead ({args.dead})"),
        }
        endpoint_ids = {name: e["id"] for name, e in made.items()}
        secrets = {name: e["secret"] for name, e in made.items()}
        procs.append(
            subprocess.Popen(
                [sys.executable, bench.__file__, "--receiver", str(healthy_port), "--secret", secrets["healthy"]],
                preexec_fn=die_with_parent,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--flaky-receiver",
                    str(flaky_port),
                    "--secret",
                    secrets["flaky"],
                    "--seed",
                    str(args.seed),
                ],
                preexec_fn=die_with_parent,
            )
        )
        for receiver in (healthy, flaky):
            await wait_http(httpx.AsyncClient(base_url=receiver.url), "/stats")

        act = Activity(random.Random(args.seed))
        await set_up_prices(api, act)
        async with db.read() as conn:
            start_seq = int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))) or 0)
        if args.streams:
            holder = subprocess.Popen(
                [sys.executable, __file__, "--hold", server_url, "--secret", key, "--streams", str(args.streams)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=die_with_parent,
            )
            assert holder.stdout is not None
            line = await asyncio.to_thread(holder.stdout.readline)
            assert line.strip() == "ready", line
            print(f"{args.streams} event streams open")
        seen: dict[str, float] = {}
        consumer = Consumer(server_url, key, seen)
        consumer.start()

        sampler = Sampler(db, endpoint_ids, server.pid, start_seq)
        stop_sampling = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(args.sample, stop_sampling))
        seconds = args.minutes * 60
        started = time.monotonic()
        print(
            f"{args.database}: {args.clients} clients for {seconds:.0f} s against {server_url}"
            f" (server pid {server.pid}; {args.workers or 'no separate'} worker(s); {args.streams} streams;"
            f" {args.restarts if cluster else 0} PostgreSQL restarts)"
        )
        restarting = None
        if cluster is not None and args.restarts:
            at = [seconds * (k + 1) / (args.restarts + 1) for k in range(args.restarts)]
            restarting = asyncio.create_task(restart_database(cluster, at, started, restarts))
        half = asyncio.create_task(client_loop(api, act, started + seconds / 2))
        others = [asyncio.create_task(client_loop(api, act, started + seconds)) for _ in range(args.clients - 1)]
        await half
        # Restart the durable consumer half-way: it resumes from its stored position.
        await asyncio.to_thread(consumer.stop)
        dupes = consumer.dupes
        consumer = Consumer(server_url, key, seen)
        consumer.start()
        consumer.dupes += dupes
        await client_loop(api, act, started + seconds)
        await asyncio.gather(*others)
        if restarting is not None:
            await restarting
        active = time.monotonic() - started
        print(f"activity stopped after {active:.0f} s; draining (at most {args.drain:.0f} s)")
        drained = await drain_until_complete(
            db, start_seq, [endpoint_ids["healthy"], endpoint_ids["flaky"]], seen, args.drain
        )
        stop_sampling.set()
        await sampling
        await asyncio.to_thread(consumer.stop)

        received = Received(await healthy.times(), await flaky.times(), dict(seen))
        health_stats, flaky_stats = await healthy.stats(), await flaky.stats()
        created = await created_events(db, start_seq)
        states = await final_states(db, endpoint_ids)
        code = report(
            args, act, sampler, created, received, states, health_stats, flaky_stats, consumer.dupes, active, drained
        )
        problems = await billing_audit(db)
        if holder is not None:
            await asyncio.sleep(2)  # the last events reach every stream
            out, _ = await asyncio.to_thread(holder.communicate, "", 60)
            results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            expected = await ids_after(db, {r["start"] for r in results})
            problems |= stream_audit(results, expected)
            counts = [r["count"] for r in results]
            print(
                f"streams: {len(results)}, events per stream min {min(counts)} max {max(counts)};"
                f" reconnects {sum(r['reconnects'] for r in results)}, refused reconnects"
                f" {sum(r['errors'] for r in results)}"
            )
        for line in restarts:
            print(line)
        restarted = [p.pid for p in (server, *workers) if p.poll() is not None]
        problems["processes that died"] = len(restarted)
        print(f"billing: {problems.pop('_renewal invoices')} renewal invoices, {problems.pop('_jobs done')} jobs done")
        bad = {k: v for k, v in problems.items() if v}
        print(f"billing and stream audit: {bad or 'passed'} (checked: {', '.join(problems)})")
        return code or (1 if bad else 0)
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        if consumer is not None:
            await asyncio.to_thread(consumer.stop)
        for worker in workers:
            stop_process(worker)
        stop_process(server)
        for proc in procs:
            stop_process(proc, 5)
        dead_socket.close()
        await api.aclose()
        await healthy.session.close()
        await flaky.session.close()
        await db.dispose()


def report(
    args: argparse.Namespace,
    act: Activity,
    sampler: Sampler,
    created: dict[str, str | None],
    received: Received,
    states: dict[str, dict[str, int]],
    health_stats: dict[str, Any],
    flaky_stats: dict[str, Any],
    consumer_dupes: int,
    active: float,
    drained: float,
) -> int:
    ids = set(created)
    last = sampler.samples[-1]
    span = max(health_stats["last"], flaky_stats["last"]) - min(health_stats["first"], flaky_stats["first"])
    delivered = len(received.healthy) + len(received.flaky)
    lat = latencies_ms(created, act.responded, received.healthy)
    print(f"\n=== soak, {args.database}, {args.minutes:g} min, {args.clients} clients, seed {args.seed}")
    print(f"API calls: {sum(act.calls.values())} {dict(sorted(act.calls.items()))}; errors: {act.errors or 'none'}")
    print(f"events: {len(ids)} created, {len(ids) / active:.1f} events/s over {active:.0f} s of activity")
    print(
        f"deliveries: {delivered} acknowledged (healthy + flaky) in {span:.0f} s = {delivered / span:.1f}/s;"
        f" {last.attempts} attempts in all ({last.attempts / (active + drained):.1f}/s), flaky answered 500"
        f" {flaky_stats['refused']} times"
    )
    print(
        f"latency API response → healthy receipt: p50 {percentile(lat, 0.5):.1f} ms,"
        f" p99 {percentile(lat, 0.99):.1f} ms,"
        f" max {max(lat, default=float('nan')):.1f} ms ({len(lat)} events; {sum(v < 0 for v in lat)} arrived before"
        f" their response)"
    )
    print(f"server peak RSS (VmHWM): {sampler.peak_rss:.1f} MB; drain after activity: {drained:.1f} s")
    depth = [s.pending["healthy"] + s.pending["flaky"] for s in sampler.samples]
    print(
        f"queue depth (healthy + flaky pending) over time: max {max(depth)}, at the end {depth[-1]};"
        f" per sample: {depth}"
    )
    print(f"deliveries by state: {states}")
    missing = {
        "healthy": ids - set(received.healthy),
        "flaky": ids - set(received.flaky),
        "consumer": ids - set(received.consumer),
    }
    unexpected = set(received.consumer) - ids
    print(
        "audit: created {} | healthy received {} (dupes {}) | flaky acknowledged {} (dupes {}) | consumer saw {}"
        " (dupes {}) | bad signatures {}".format(
            len(ids),
            len(ids & set(received.healthy)),
            health_stats["dupes"],
            len(ids & set(received.flaky)),
            flaky_stats["dupes"],
            len(ids & set(received.consumer)),
            consumer_dupes,
            health_stats["bad"] + flaky_stats["bad"],
        )
    )
    lost = set().union(*missing.values())
    failed = (
        bool(lost)
        or bool(unexpected)
        or health_stats["bad"] + flaky_stats["bad"] > 0
        or states["flaky"].get("failed", 0) > 0
        or any(" 500" in k for k in act.errors)
        or not ids
    )
    for name, gone in missing.items():
        if gone:
            print(f"  missing at {name}: {len(gone)}, e.g. {sorted(gone)[:5]}")
    if unexpected:
        print(f"  consumer saw {len(unexpected)} events not created in the run")
    print(f"lost: {len(lost)} — audit {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


async def main(args: argparse.Namespace) -> int:
    # PostgreSQL needs a shared encryption key (every process of the run inherits this one).
    os.environ.setdefault("PAYWIRE_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    with tempfile.TemporaryDirectory(prefix="paywire-soak-") as tmp:
        workdir = Path(tmp)
        if args.database == "sqlite":
            code = await run(args, workdir, f"sqlite:///{workdir / 'soak.db'}")
        else:
            cluster = PgCluster(Path(args.pg_cluster), args.pg_port) if args.pg_cluster else None
            if cluster is not None:
                cluster.start()
                args.pg = cluster.url
            url, name = await create_pg_database(args.pg)
            try:
                code = await run(args, workdir, url, cluster)
            finally:
                await drop_pg_database(args.pg, name)
        if code and args.keep_log:
            (Path(args.keep_log)).write_bytes((workdir / "server.log").read_bytes())
        return code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the activity (0.5 for a quick run)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAYWIRE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to create the soak's own database from",
    )
    parser.add_argument(
        "--pg-cluster",
        help="the data dir of a PRIVATE PostgreSQL cluster to run on (made with initdb if missing, started on"
        " --pg-port); needed for --restarts, which restart it with pg_ctl. Never the shared server.",
    )
    parser.add_argument("--pg-port", type=int, default=5433, help="the private cluster's port")
    parser.add_argument("--restarts", type=int, default=0, help="restart the private cluster this many times")
    parser.add_argument("--workers", type=int, default=0, help="`paywire worker` processes beside `serve --no-worker`")
    parser.add_argument("--streams", type=int, default=0, help="open GET /api/events/stream connections to hold")
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument("--seed", type=int, default=1, help="seeds the activity mix and the flaky receiver")
    parser.add_argument("--dead", choices=("refused", "hang"), default="refused", help="how the dead endpoint fails")
    parser.add_argument(
        "--retry-schedule", default="1,1,2,2,3,3,5,5,5,5,5,5", help="PAYWIRE_WEBHOOK_RETRY_SCHEDULE for the server"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="PAYWIRE_WEBHOOK_TIMEOUT for the server (s)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between queue-depth samples")
    parser.add_argument("--drain", type=float, default=180.0, help="at most this many seconds of drain after activity")
    parser.add_argument("--keep-log", help="copy the server log here when the audit fails")
    parser.add_argument("--flaky-receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (finally blocks) on SIGTERM
    if parsed.restarts and not parsed.pg_cluster:
        parser.error("--restarts needs --pg-cluster (never restart the shared PostgreSQL)")
    if parsed.flaky_receiver:
        run_flaky_receiver(parsed.flaky_receiver, parsed.secret, parsed.seed)
    elif parsed.hold:
        asyncio.run(hold_streams(parsed.hold, parsed.secret, parsed.streams))
    else:
        sys.exit(asyncio.run(main(parsed)))

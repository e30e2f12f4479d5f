"""Shared machinery of the fault tests: real `paywire serve` / `paywire worker` processes, an
API driver that tells clean failures from crashes, a billing workload, and the final audit of
what the database and the receiver hold.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import keys
from paywire.db.engine import Database
from paywire.db.schema import (
    billing_jobs,
    checkout_sessions,
    events,
    invoices,
    payment_intents,
    refunds,
    test_clocks,
    webhook_deliveries,
)
from tests.conftest import free_port
from tests.integration.delivery_receiver import Receiver

DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, where every test clock starts

# Short leases, timeouts and retries, so a killed worker's claims come back within seconds.
FAULT_ENV = {
    "PAYWIRE_WEBHOOK_LEASE": "2",
    "PAYWIRE_WEBHOOK_POLL_INTERVAL": "0.1",
    "PAYWIRE_WEBHOOK_TIMEOUT": "3",
    "PAYWIRE_WEBHOOK_RETRY_SCHEDULE": ",".join(["0.2", "0.5"] + ["1"] * 20),
    "PAYWIRE_CHARGE_GRACE_SECONDS": "2",  # a charge or refund a crash left in flight settles soon
}


def seed(default: int) -> int:
    """The test's fixed seed; `PAYWIRE_FAULT_SEED` shifts it, to explore other timings."""
    return default + int(os.environ.get("PAYWIRE_FAULT_SEED", "0"))


class Procs:
    """`paywire serve` and `paywire worker` subprocesses, killed and restarted at will."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.port = free_port()
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = []
        self.started = 0
        self.log_of: dict[int, Path] = {}  # pid -> its log file

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.started += 1
        path = self.logs / f"{args[0]}-{self.started}.log"
        log = open(path, "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "paywire.cli.main", *args, "--database-url", self.url]
        proc = subprocess.Popen(cmd, env={**os.environ, **FAULT_ENV}, stdout=log, stderr=subprocess.STDOUT)
        self.log_of[proc.pid] = path
        return proc

    async def start_serve(self) -> None:
        self.serve = self._spawn("serve", "--port", str(self.port), "--no-worker")
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.serve.poll() is None, "paywire serve exited at start"
                try:
                    await client.get(f"{self.api_url}/api/events")  # any answer (401) means it is up
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        raise AssertionError("paywire serve did not start within 20 s")

    def start_worker(self, index: int | None = None) -> None:
        proc = self._spawn("worker", "--concurrency", "50")
        if index is None:
            self.workers.append(proc)
        else:
            self.workers[index] = proc

    async def wait_workers_started(self, timeout: float = 30) -> None:
        """Until every worker has printed its start line (migrated and started): a fault injected
        earlier would hit its start-up, which a real deployment retries by restarting it."""
        deadline = time.monotonic() + timeout
        for proc in self.workers:
            assert proc is not None
            while "paywire worker:" not in self.log_of[proc.pid].read_text(errors="replace"):
                assert proc.poll() is None, "paywire worker exited at start"
                assert time.monotonic() < deadline, f"paywire worker did not start within {timeout} s"
                await asyncio.sleep(0.05)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            assert proc.returncode == -signal.SIGKILL

    def escaped(self) -> list[str]:
        """Lines of the processes' logs where an exception escaped to uvicorn (it then resets the
        client's connection) or a traceback was logged as an unexpected error."""
        markers = ("Exception in ASGI application", "unexpected error")
        return [
            f"{log.name}: {line}"
            for log in sorted(self.logs.glob("serve-*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if any(marker in line for marker in markers)
        ]

    def stop_all(self) -> None:
        procs = [p for p in [self.serve, *self.workers] if p is not None and p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def make_key(url: str) -> str:
    db = Database(url)
    try:
        async with db.transaction() as tx:
            return await keys.create_key(tx.conn, livemode=False, now=time.time())
    finally:
        await db.dispose()


# --- driving the API ------------------------------------------------------------------------


class Ambiguous(Exception):
    """The request may or may not have been applied (the server died, or answered 503)."""


@dataclass
class Api:
    """An HTTP client that records every answer, so tests can assert on how failures looked."""

    client: httpx.AsyncClient
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable: list[httpx.Response] = field(default_factory=list)  # every 503
    crashes: list[str] = field(default_factory=list)  # 500s (never expected)
    dropped: int = 0  # requests cut off by a dead server

    async def once(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.TransportError as exc:
            self.dropped += 1
            raise Ambiguous(str(exc)) from exc
        self.statuses[response.status_code] += 1
        if response.status_code == 503:
            self.unavailable.append(response)
            raise Ambiguous(response.text)
        if response.status_code >= 500:
            self.crashes.append(f"{method} {path}: {response.status_code} {response.text}")
            raise Ambiguous(response.text)
        return response

    async def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One attempt; a 2xx body, else `Ambiguous` (crash, 503) or AssertionError (a 4xx)."""
        response = await self.once(method, path, body)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        data: dict[str, Any] = response.json()
        return data

    async def retry(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Repeat a request that is safe to repeat until it succeeds (or the server says 4xx)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = await self.once(method, path, body)
                return response.json() if response.status_code == 200 else response
            except Ambiguous:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


@dataclass
class Workload:
    """Billing activity: subscriptions on test clocks advanced month by month, checkouts with
    NFT minting (a wall-clock scheduler job), refunds and short trials (wall-clock trial notices).

    Creates are not retried when their outcome is unknown: the audit checks the database's
    own consistency, whatever subset of the requests took effect.
    """

    api: Api
    rng: random.Random
    clocks: dict[str, int] = field(default_factory=dict)  # clock id -> time it was last advanced to
    stuck: set[str] = field(default_factory=set)  # clocks left `advancing` by a killed server
    intents: list[str] = field(default_factory=list)
    plan: str = ""
    item: str = ""
    ops: Counter[str] = field(default_factory=Counter)

    async def setup(self, receiver: Receiver) -> None:
        """The endpoint and the catalogue, made before any fault is injected."""
        endpoint = await self.api.retry(
            "POST", "/api/webhook-endpoints", {"url": receiver.at("/ok"), "enabled_events": ["*"]}
        )
        receiver.secrets["/ok"] = [endpoint["secret"]]
        product = await self.api.retry("POST", "/api/products", {"name": "Plan"})
        self.plan = (
            await self.api.retry(
                "POST",
                "/api/prices",
                {
                    "product_id": product["id"],
                    "unit_amount": "10.00",
                    "currency": "usd",
                    "recurring": {"interval": "month"},
                },
            )
        )["id"]
        self.item = (
            await self.api.retry(
                "POST", "/api/prices", {"product_id": product["id"], "unit_amount": "25.00", "currency": "usd"}
            )
        )["id"]

    async def subscribe(self) -> None:
        clock = await self.api.ok("POST", "/api/test-clocks", {"frozen_time": T0})
        customer = await self.api.ok("POST", "/api/customers", {"email": "f@example.com", "test_clock_id": clock["id"]})
        await self.api.ok(
            "POST",
            "/api/subscriptions",
            {
                "customer_id": customer["id"],
                "items": [{"price_id": self.plan}],
                "default_payment_method": "pm_card_visa",
            },
        )
        self.clocks[clock["id"]] = T0

    async def advance(self, clock_id: str | None = None) -> None:
        """Move a clock 32 days on (one renewal); retried, since advancing again is harmless."""
        live = [c for c in self.clocks if c not in self.stuck]
        if clock_id is None and not live:
            return
        clock_id = clock_id or self.rng.choice(live)
        to = self.clocks[clock_id] + 32 * DAY
        result = await self.api.retry("POST", f"/api/test-clocks/{clock_id}/advance", {"frozen_time": to})
        if isinstance(result, httpx.Response):  # 409: a killed server left it advancing
            assert result.status_code == 409 and result.json()["error"]["code"] == "test_clock_advancing", result.text
            self.stuck.add(clock_id)
            return
        self.clocks[clock_id] = to

    async def unstick(self, db: Database) -> None:
        """Clocks a killed server left `advancing`: a live worker takes each over at once (its
        owner is known dead) and runs the jobs it had left; wait for that, then advance again."""
        stuck, self.stuck = self.stuck, set()
        for clock_id in stuck:
            async with asyncio.timeout(30):
                while True:
                    async with db.read() as conn:
                        status = await conn.scalar(sa.select(test_clocks.c.status).where(test_clocks.c.id == clock_id))
                    if status == "ready":
                        break
                    await asyncio.sleep(0.2)
            await self.advance(clock_id)

    async def checkout(self) -> None:
        session = await self.api.ok(
            "POST",
            "/api/checkout-sessions",
            {"mode": "payment", "line_items": [{"price_id": self.item}], "nft_mint_settings": {"enabled": True}},
        )
        done = await self.api.ok(
            "POST", f"/api/checkout-sessions/{session['id']}/confirm", {"payment_method": "pm_card_visa"}
        )
        self.intents.append(done["payment_intent_id"])

    async def refund(self) -> None:
        if self.intents:
            intent = self.intents.pop(self.rng.randrange(len(self.intents)))
            await self.api.ok("POST", f"/api/payment-intents/{intent}/refund", {"amount": "5.00"})

    async def trial(self) -> None:
        """A 1-day trial on the wall clock: its `trial_will_end` notice is due at once (scheduler)."""
        customer = await self.api.ok("POST", "/api/customers", {"email": "t@example.com"})
        await self.api.ok(
            "POST",
            "/api/subscriptions",
            {
                "customer_id": customer["id"],
                "items": [{"price_id": self.plan}],
                "default_payment_method": "pm_card_visa",
                "trial_period_days": 1,
            },
        )

    async def step(self) -> None:
        """One random operation; an ambiguous outcome (crash, 503) is counted and accepted."""
        kinds = ["subscribe", "advance", "advance", "advance", "checkout", "refund", "trial"]
        kind = self.rng.choice(kinds)
        try:
            await getattr(self, kind)()
            self.ops[kind] += 1
        except Ambiguous:
            self.ops[f"{kind}?"] += 1
            await asyncio.sleep(0.05)


# --- the audit ------------------------------------------------------------------------------


async def _count(conn: AsyncConnection, query: sa.Select[Any]) -> list[Any]:
    return list((await conn.execute(query)).all())


async def settled(db: Database, now: float) -> bool:
    """Every delivery finished, no wall-clock job left due, no charge or refund in flight."""
    async with db.read() as conn:
        charging = await conn.scalar(sa.select(sa.func.count()).where(payment_intents.c.status == "processing"))
        refunding = await conn.scalar(sa.select(sa.func.count()).where(refunds.c.status == "pending"))
        in_flight = (charging or 0) + (refunding or 0)
        if in_flight:
            return False
        open_deliveries = await conn.scalar(sa.select(sa.func.count()).where(webhook_deliveries.c.status == "pending"))
        due_jobs = await conn.scalar(
            sa.select(sa.func.count()).where(
                billing_jobs.c.status == "pending", billing_jobs.c.test_clock_id.is_(None), billing_jobs.c.due <= now
            )
        )
    return open_deliveries == 0 and due_jobs == 0


async def wait_settled(db: Database, receiver: Receiver, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not await settled(db, time.time()):
        assert time.monotonic() < deadline, "deliveries or due jobs left unfinished"
        await asyncio.sleep(0.2)


async def audit(db: Database, receiver: Receiver) -> dict[str, int]:
    """Assert what the database and the receiver hold; returns a few counts for the report."""
    async with db.read() as conn:
        rows = await _count(conn, sa.select(events.c.id, events.c.type, events.c.object_id, events.c.data))
        deliveries = Counter((await conn.execute(sa.select(webhook_deliveries.c.status))).scalars())
        jobs = await _count(
            conn,
            sa.select(billing_jobs.c.kind, billing_jobs.c.status, billing_jobs.c.due, billing_jobs.c.test_clock_id),
        )
        clocks = await _count(conn, sa.select(test_clocks.c.id, test_clocks.c.frozen_time, test_clocks.c.status))
        cycles = await _count(
            conn,
            sa.select(invoices.c.subscription_id, invoices.c.period_start, sa.func.count())
            .where(invoices.c.billing_reason == "subscription_cycle")
            .group_by(invoices.c.subscription_id, invoices.c.period_start),
        )
        per_invoice = await _count(
            conn,
            sa.select(payment_intents.c.invoice_id, sa.func.count())
            .where(payment_intents.c.invoice_id.is_not(None))
            .group_by(payment_intents.c.invoice_id),
        )
        per_period = await _count(
            conn,
            sa.select(invoices.c.subscription_id, invoices.c.period_start, sa.func.count())
            .select_from(payment_intents.join(invoices, invoices.c.id == payment_intents.c.invoice_id))
            .where(payment_intents.c.status == "succeeded", invoices.c.billing_reason == "subscription_cycle")
            .group_by(invoices.c.subscription_id, invoices.c.period_start),
        )
        paid_intents = set(
            (
                await conn.execute(sa.select(payment_intents.c.id).where(payment_intents.c.status == "succeeded"))
            ).scalars()
        )
        refund_ids = set((await conn.execute(sa.select(refunds.c.id))).scalars())
        mints = await _count(
            conn,
            sa.select(checkout_sessions.c.id, checkout_sessions.c.nft_mint_status).where(
                checkout_sessions.c.nft_mint_enabled.is_(True), checkout_sessions.c.status == "complete"
            ),
        )

    # Webhooks: every event reached the receiver, every copy of one event is the same signed body.
    ids = {r.id for r in rows}
    got = receiver.on("/ok")
    assert set(deliveries) == {"succeeded"}, deliveries
    assert {r.webhook_id for r in got} == ids, "events lost or invented"
    bodies: dict[str, bytes] = {}
    for r in got:
        assert all(r.verified.values()) and r.verified, f"bad signature on {r.webhook_id}"
        assert bodies.setdefault(r.webhook_id, r.body) == r.body, f"{r.webhook_id} re-sent with another body"

    # Billing: no job failed, no clock left advancing, every job due on its clock ran.
    failed = [j for j in jobs if j.status == "failed"]
    assert not failed, failed
    assert all(c.status == "ready" for c in clocks), clocks
    clock_times = {c.id: c.frozen_time for c in clocks}
    for j in jobs:
        if j.status == "pending" and j.test_clock_id is not None:
            assert j.due > clock_times[j.test_clock_id], f"due job left on its clock: {j}"

    # Exactly once: one invoice per subscription period, one intent per invoice, one event per change.
    assert all(n == 1 for *_, n in cycles), [c for c in cycles if c[2] != 1]
    assert all(n == 1 for _, n in per_invoice), [p for p in per_invoice if p[1] != 1]
    assert all(n == 1 for *_, n in per_period), [p for p in per_period if p[2] != 1]  # never charged twice
    by_type = Counter((r.type, r.object_id) for r in rows)
    renewed = Counter(
        (r.object_id, r.data["object"]["current_period_start"]) for r in rows if r.type.endswith(".renewed")
    )
    assert sorted(renewed) == sorted((s, p) for s, p, _ in cycles), "renewals without (or beyond) their invoice"
    assert max(renewed.values(), default=1) == 1
    assert all(by_type["payment_intent.succeeded", i] == 1 for i in paid_intents)
    assert all(by_type["refund.succeeded", r] == 1 for r in refund_ids)
    assert all(status == "minted" and by_type["checkout.session.nft_minted", s] == 1 for s, status in mints), mints
    trials = [r.object_id for r in rows if r.type == "customer.subscription.trial_start"]
    assert all(by_type["customer.subscription.trial_will_end", s] == 1 for s in trials)
    return {
        "events": len(ids),
        "received": len(got),
        "duplicates": len(got) - len(ids),
        "renewals": len(renewed),
        "mints": len(mints),
        "refunds": len(refund_ids),
        "trial_notices": len(trials),
    }

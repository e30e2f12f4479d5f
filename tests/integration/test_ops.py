"""`/healthz`, `/readyz`, `/metrics` on the API's port, and on a worker's own metrics port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.ops.routes import expected_revision
from paywire.settings import Settings
from tests.conftest import Server, free_port, start_server, stop_server


async def test_ready_when_database_schema_and_worker_are(server: Server) -> None:
    async with server.client() as api:
        assert (await api.get("/healthz")).json()["status"] == "ok"
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "worker": "ok"}}
        head = expected_revision()
        async with server.app.db.transaction() as tx:
            await tx.conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
        try:
            stale = await api.get("/readyz")
        finally:  # the PostgreSQL test database is shared by the session's tests
            async with server.app.db.transaction() as tx:
                await tx.conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        assert stale.status_code == 503
        assert stale.json()["checks"]["migrations"] == f"at 0001, expected {head}"


async def test_not_ready_without_a_live_worker(database_url: str) -> None:
    app = PaywireApp(database_url, run_worker=False)
    uv, task, url = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert "no worker seen" in answer.json()["checks"]["worker"]
    finally:
        await stop_server(uv, task)


async def test_metrics_from_loopback_count_requests_and_read_the_queue(server: Server) -> None:
    async with server.client() as api:
        await api.post("/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
        await api.post("/api/customers", json={"email": "m@example.com"})
        text = (await api.get("/metrics")).text
    assert 'paywire_api_requests_total{method="POST",route="/api/customers",status="200"}' in text
    assert "paywire_api_request_duration_seconds_bucket" in text
    pending = next(line for line in text.splitlines() if line.startswith("paywire_deliveries_pending "))
    assert float(pending.split()[1]) >= 1  # the customer.created delivery to the dead endpoint
    assert 'paywire_webhook_endpoints{status="enabled"} 1.0' in text


async def test_metrics_count_delivery_attempts(server: Server) -> None:
    from prometheus_client import REGISTRY

    from paywire.ops.metrics import ATTEMPTS

    def first_attempts() -> tuple[float, float]:
        labels = {"destination": "webhook"}
        count = REGISTRY.get_sample_value("paywire_delivery_latency_seconds_count", labels) or 0.0
        return count, REGISTRY.get_sample_value("paywire_delivery_latency_seconds_sum", labels) or 0.0

    before = ATTEMPTS.labels("webhook", "failed")._value.get()
    latency_before = first_attempts()
    async with server.client() as api:
        await api.post("/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
        await api.post("/api/customers", json={"email": "m@example.com"})
        for _ in range(100):  # the server's worker tries the dead endpoint at once
            text = (await api.get("/metrics")).text
            if ATTEMPTS.labels("webhook", "failed")._value.get() > before:
                break
            await asyncio.sleep(0.1)
    assert ATTEMPTS.labels("webhook", "failed")._value.get() > before
    assert 'paywire_delivery_attempts_total{destination="webhook",outcome="failed"}' in text
    # The first attempt's latency, from the event's write to the refused connection: observed, and short.
    count, total = first_attempts()
    assert count > latency_before[0] and 0 <= total - latency_before[1] < 10 * (count - latency_before[0])
    gauges = ("paywire_delivery_oldest_pending_seconds", "paywire_billing_jobs_due", "paywire_billing_jobs_lag_seconds")
    for name in gauges:
        assert f"\n{name} " in text


async def test_metrics_token_is_required_when_set(database_url: str) -> None:
    settings = Settings(database_url=database_url, metrics_token="scrape-me")  # type: ignore[arg-type]
    app = PaywireApp(database_url, run_worker=False, settings=settings)
    uv, task, url = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
            allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert refused.status_code == wrong.status_code == 403
        assert refused.json()["error"]["code"] == "metrics_forbidden"
        assert allowed.status_code == 200 and "paywire_deliveries_pending" in allowed.text
    finally:
        await stop_server(uv, task)


def test_worker_serves_metrics_on_its_own_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "paywire.cli.main", "worker", "--database-url", url, "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert ready.status_code == 200, ready.text  # its own heartbeat makes it ready
        assert "paywire_deliveries_pending" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert httpx.get(f"http://127.0.0.1:{port}/api/customers").status_code == 404  # no API there
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_json_logs_carry_the_request_id(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'j.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "paywire.cli.main", "serve", "--database-url", url, "--port", str(port),
         "--no-worker", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        request_id = answer.headers["request-id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access" and "/healthz" in line["message"]]
    assert access and access[0]["request_id"] == request_id
    # The first start's test key is shown to the person at the terminal, never written to the logs.
    text = [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert text and text[0].startswith("Created a test secret key") and all(k not in json.dumps(lines) for k in text)

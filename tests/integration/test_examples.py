"""Payment Kit's two patterns (`examples/`) against a real server: each handler runs once per event.

Both examples run as subprocesses, as a user runs them: the FastAPI app under uvicorn on a free
port (its start-up registers its callback), the EventBus worker with `python`. A subscription
on a test clock is created and renewed through the API; then the `handled <type> <id>` lines
each example printed are counted: exactly one per event, so a double delivery cannot hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
WANTED = ("customer.subscription.started", "customer.subscription.renewed")
DEADLINE = 20.0  # seconds for startup, and again for the events to arrive


class Proc:
    """A subprocess whose merged output is collected line by line in the background."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace").rstrip())

    async def wait_for(self, text: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the output:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.05)

    def handled(self) -> list[str]:
        return [line for line in self.lines if line.startswith("handled ")]


@contextlib.asynccontextmanager
async def started(*args: str, env: dict[str, str]) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    running = Proc(proc)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(running.reader, 5)


async def ok(response: Any) -> dict[str, Any]:
    response = await response
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def renewed_subscription(api: httpx.AsyncClient) -> dict[str, str]:
    """A subscription on a test clock, started now and renewed by moving the clock a period on.

    Returns the ids of the two events the examples handle, by type."""
    product = await ok(api.post("/api/products", json={"name": "Example plan"}))
    price = await ok(
        api.post(
            "/api/prices",
            json={
                "product_id": product["id"],
                "unit_amount": "9.00",
                "currency": "usd",
                "recurring": {"interval": "month"},
            },
        )
    )
    clock = await ok(api.post("/api/test-clocks", json={"frozen_time": int(time.time())}))
    customer = await ok(api.post("/api/customers", json={"email": "ex@example.com", "test_clock_id": clock["id"]}))
    sub = await ok(
        api.post(
            "/api/subscriptions",
            json={
                "customer_id": customer["id"],
                "items": [{"price_id": price["id"]}],
                "default_payment_method": "pm_card_visa",
            },
        )
    )
    await ok(api.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": sub["current_period_end"]}))
    ids = {}
    for event_type in WANTED:
        listed = await ok(api.get("/api/events", params={"type": event_type, "object_id": sub["id"]}))
        [event] = listed["list"]
        ids[event_type] = event["id"]
    return ids


async def wait_handled(proc: Proc, expected: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not set(expected) <= set(proc.handled()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def consumer_ready(api: httpx.AsyncClient, name: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (await api.get(f"/api/event-consumers/{name}")).status_code != 200:
        assert time.monotonic() < deadline, f"the EventBus consumer {name!r} never registered"
        await asyncio.sleep(0.1)


async def test_webhook_app_and_eventbus_worker_each_handle_every_event_once(
    server: Server, api: httpx.AsyncClient
) -> None:
    # An endpoint already exists: the app's ensure_webhooks must take it over (Payment Kit's update branch).
    old = await ok(
        api.post("/api/webhook-endpoints", json={"url": "https://old.example/hook", "enabled_events": ["*"]})
    )
    # One event first: a named bus stores its starting position only once the log has a head.
    await ok(api.post("/api/customers", json={"email": "first@example.com"}))
    port = free_port()
    env = {"PAYWIRE_URL": server.url, "PAYWIRE_API_KEY": server.test_key, "APP_URL": f"http://127.0.0.1:{port}"}
    app_cmd = (sys.executable, "-m", "uvicorn", "examples.webhook_app:app", "--port", str(port))
    worker_cmd = (sys.executable, "examples/eventbus_worker.py")
    async with started(*app_cmd, env=env) as app, started(*worker_cmd, env=env) as worker:
        await app.wait_for("Application startup complete")
        await consumer_ready(api, "example-worker")

        endpoints = await ok(api.get("/api/webhook-endpoints"))
        assert endpoints["count"] == 1
        [endpoint] = endpoints["list"]
        assert endpoint["id"] == old["id"] and endpoint["url"] == f"http://127.0.0.1:{port}/api/payment/callback"
        assert endpoint["enabled_events"] == list(WANTED)
        async with httpx.AsyncClient() as anyone:
            unsigned = await anyone.post(f"http://127.0.0.1:{port}/api/payment/callback", json={"id": "x"})
        assert unsigned.status_code == 400  # verifySig: no signature, no handler

        ids = await renewed_subscription(api)
        expected = [f"handled {t} {ids[t]}" for t in WANTED]
        await asyncio.gather(wait_handled(app, expected), wait_handled(worker, expected))
        await asyncio.sleep(1.0)  # a duplicate would arrive about now
        attempts = (await ok(api.get("/api/webhook-attempts", params={"webhook_endpoint_id": old["id"]})))["list"]

    for name, proc in (("webhook app", app), ("eventbus worker", worker)):
        assert sorted(proc.handled()) == sorted(expected), (
            f"{name} handled {proc.handled()}, expected each of {expected} once\n"
            + f"webhook attempts: {[(a['event_id'], a['status'], a['response_status']) for a in attempts]}\n"
            + "\n".join(proc.lines[-40:])
        )

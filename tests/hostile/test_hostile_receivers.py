"""Receivers that misbehave: each ends as the contract says, and a healthy endpoint beside them
is not starved.

500 → failed, retry scheduled; hang past the timeout and accept-but-never-read → `timeout`, retry
scheduled; connection reset → `connection_reset`, retry scheduled; redirect → failed, not
followed; 410 → failed for good, endpoint disabled, `webhook_endpoint.disabled` emitted; a 50 MB
body → success, 4 KiB stored, and the dispatcher stops reading after 4 KiB (the receiver can
only push what fits in the socket buffers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from paywire.app import PaywireApp
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.hostile import hostile_receivers as rx
from tests.hostile.hostile_receivers import HostileReceiver

TIMEOUT = 8.0  # long beside normal delivery, so "done before the first hang timed out" is not flaky
CONFIG = DeliveryConfig(timeout=TIMEOUT, schedule=(600,), jitter=0.0, poll_interval=0.1)  # one retry, far off
N = 20  # customers created per phase: one `customer.created` event each, to every endpoint


@dataclass
class Setting:
    app: PaywireApp
    api: httpx.AsyncClient

    async def endpoint(self, url: str) -> str:
        response = await self.api.post(
            "/api/webhook-endpoints", json={"url": url, "enabled_events": ["customer.created"]}
        )
        assert response.status_code == 200, response.text
        endpoint_id: str = response.json()["id"]
        return endpoint_id

    async def customers(self, n: int) -> None:
        for i in range(n):
            assert (await self.api.post("/api/customers", json={"name": f"c{i}"})).status_code == 200

    async def attempts(self, endpoint_id: str) -> list[dict[str, Any]]:
        response = await self.api.get("/api/webhook-attempts", params={"webhook_endpoint_id": endpoint_id, "size": 100})
        found: list[dict[str, Any]] = response.json()["list"]
        return found

    async def first_attempt(self, endpoint_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT + 10
        while not (found := await self.attempts(endpoint_id)):
            assert time.monotonic() < deadline, f"no attempt to {endpoint_id}"
            await asyncio.sleep(0.05)
        return found[-1]  # oldest first


@pytest.fixture
async def setting(database_url: str) -> AsyncIterator[Setting]:
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, CONFIG))
    uv, task, url = await start_server(app)
    try:
        headers = {"Authorization": f"Bearer {await new_key(app)}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as api:
            yield Setting(app, api)
    finally:
        await stop_server(uv, task)


async def _timed(until: Callable[[], bool], limit: float) -> float:
    started = time.monotonic()
    while not until():
        assert time.monotonic() - started < limit, f"not within {limit} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_hostile_receivers_end_as_the_contract_says_and_do_not_starve_a_healthy_one(setting: Setting) -> None:
    healthy = await HostileReceiver(rx.healthy).start()
    hostile = {
        name: await HostileReceiver(behaviour).start()
        for name, behaviour in {
            "500": rx.server_error,
            "hang": rx.hang,
            "never reads": rx.deaf,
            "reset": rx.reset,
            "redirect": rx.redirect_to(healthy.url),
            "410": rx.gone,
            "50 MB": rx.huge,
        }.items()
    }
    try:
        await setting.endpoint(healthy.url)
        # Baseline: the healthy endpoint alone.
        started = time.monotonic()
        await setting.customers(N)
        await _timed(lambda: len(healthy.webhook_ids) >= N, 30)
        alone = time.monotonic() - started

        ids = {name: await setting.endpoint(receiver.url) for name, receiver in hostile.items()}
        # One event first, until the hanging receivers hold a request each: they are stuck now.
        stuck = time.monotonic()
        await setting.customers(1)
        stuck_ones = (hostile["hang"], hostile["never reads"])
        await _timed(lambda: all(r.open > 0 for r in stuck_ones) and len(healthy.webhook_ids) > N, 10)
        started = time.monotonic()
        await setting.customers(N)
        await _timed(lambda: len(healthy.webhook_ids) >= 2 * N + 1, 30)
        beside = time.monotonic() - started
        # Every healthy delivery arrived while the hanging receivers still held their very first
        # requests (none has timed out yet), so they cost the healthy endpoint nothing. Real
        # throughput figures belong to bench/.
        assert time.monotonic() - stuck < TIMEOUT, (alone, beside)
        assert not await setting.attempts(ids["hang"]) and not await setting.attempts(ids["never reads"])
        assert all(r.open > 0 for r in stuck_ones)

        await _check_outcomes(setting, ids, hostile)
        assert len(healthy.webhook_ids) == len(set(healthy.webhook_ids)) == 2 * N + 1  # redirects not followed
    finally:
        for receiver in [healthy, *hostile.values()]:
            await receiver.stop()


async def _check_outcomes(setting: Setting, ids: dict[str, str], hostile: dict[str, HostileReceiver]) -> None:
    first = {name: await setting.first_attempt(endpoint_id) for name, endpoint_id in ids.items()}
    for name in ("500", "hang", "never reads", "reset", "redirect"):
        attempt = first[name]
        assert attempt["status"] == "failed" and attempt["next_retry_at"] is not None, (name, attempt)
    assert first["500"]["response_status"] == 500 and first["500"]["error_type"] == "http_status"
    assert first["500"]["response_body"] == "internal error"
    for name in ("hang", "never reads"):
        assert first[name]["error_type"] == "timeout" and first[name]["response_status"] is None, first[name]
        assert first[name]["duration_ms"] >= TIMEOUT * 1000 * 0.9
    assert first["reset"]["error_type"] == "connection_reset" and first["reset"]["response_status"] is None
    assert first["redirect"]["response_status"] == 307 and "not followed" in first["redirect"]["error"]

    gone = first["410"]
    assert gone["status"] == "failed" and gone["response_status"] == 410 and gone["next_retry_at"] is None
    assert await _status(setting, ids["410"]) == "disabled"
    disabled = (await setting.api.get("/api/events", params={"type": "webhook_endpoint.disabled"})).json()
    assert [e["data"]["object"]["id"] for e in disabled["list"]] == [ids["410"]]
    sent = hostile["410"].requests  # the first 410 and any requests already in flight beside it
    assert 1 <= sent <= CONFIG.per_endpoint
    await asyncio.sleep(0.5)
    assert hostile["410"].requests == sent  # nothing more is sent to a disabled endpoint

    big = first["50 MB"]
    assert big["status"] == "succeeded" and big["response_status"] == 200
    assert big["response_body"] == "x" * 4096
    # The dispatcher read 4 KiB and hung up: the receiver could only push what the socket
    # buffers held, nowhere near 50 MB, for any of its requests.
    assert 0 < hostile["50 MB"].bytes_sent < rx.HUGE_BODY // 4


async def _status(setting: Setting, endpoint_id: str) -> str:
    for _ in range(100):
        status: str = (await setting.api.get(f"/api/webhook-endpoints/{endpoint_id}")).json()["status"]
        if status == "disabled":
            break
        await asyncio.sleep(0.05)
    return status

"""Webhook delivery end to end: a real server, a real dispatcher, a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.db.schema import webhook_endpoints
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.integration.delivery_receiver import Receiver, until

FAST = DeliveryConfig(
    timeout=1.0,
    schedule=(0.2, 0.2),
    jitter=0.0,
    lease=5.0,
    poll_interval=0.2,
    failures_before_backoff=100,  # these tests watch retries, not the endpoint back-off
    allow_private_networks=False,
)


@dataclass
class Hooks:
    app: PaywireApp
    api: httpx.AsyncClient
    live: httpx.AsyncClient
    receiver: Receiver

    async def endpoint(self, path: str, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        response = await self.api.post(
            "/api/webhook-endpoints",
            json={"url": self.receiver.at(path), "enabled_events": events or ["*"], **extra},
        )
        assert response.status_code == 200, response.text
        endpoint: dict[str, Any] = response.json()
        self.receiver.secrets.setdefault(path, []).append(endpoint["secret"])
        return endpoint

    async def customer(self, client: httpx.AsyncClient | None = None) -> str:
        """Create a customer (emits `customer.created`); returns the event id."""
        await (client or self.api).post("/api/customers", json={"email": "a@example.com"})
        events = (await (client or self.api).get("/api/events", params={"size": 1})).json()
        event_id: str = events["list"][0]["id"]
        return event_id

    async def attempts(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get("/api/webhook-attempts", params={"size": 100, **params})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["list"]
        return found

    async def event(self, event_id: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self.api.get(f"/api/events/{event_id}")).json()
        return found

    async def wait_attempts(self, n: int, timeout: float = 10.0, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            nonlocal found
            found = await self.attempts(**params)
            return len(found) >= n

        deadline = time.monotonic() + timeout
        while not await enough():
            assert time.monotonic() < deadline, f"only {len(found)} of {n} attempts: {found}"
            await _sleep(0.05)
        return found


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[Hooks]:
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, FAST))
    receiver = await Receiver().start()
    uv, task, url = await start_server(app)
    try:
        test_key, live_key = await new_key(app), await new_key(app, live=True)
        async with (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {test_key}"}) as api,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {live_key}"}) as live,
        ):
            yield Hooks(app, api, live, receiver)
    finally:
        await stop_server(uv, task)
        await receiver.stop()


async def test_delivery_is_signed_and_verified_by_standardwebhooks_and_svix(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/ok")
    event_id = await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 1)
    got = hooks.receiver.on("/ok")[0]
    assert got.verified == {endpoint["secret"]: True}
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("Paywire/")
    assert got.webhook_id == event_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert got.headers["webhook-signature"].startswith("v1,")
    assert len(got.headers["webhook-signature"].split()) == 1
    body = json.loads(got.body)
    assert body == {**await hooks.event(event_id), "pending_webhooks": 1}
    [attempt] = await hooks.wait_attempts(1, event_id=event_id)
    assert attempt["object"] == "webhook_attempt"
    assert attempt["status"] == "succeeded"
    assert attempt["webhook_endpoint_id"] == endpoint["id"]
    assert attempt["response_status"] == 200
    assert attempt["response_body"] == "ok"
    assert attempt["retry_count"] == 0 and attempt["next_retry_at"] is None and attempt["error"] is None
    assert attempt["id"].startswith("wha_")
    await until(lambda: True)
    assert (await hooks.event(event_id))["pending_webhooks"] == 0


async def test_rotation_signs_with_both_secrets_until_the_old_one_expires(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/ok")
    old = endpoint["secret"]
    rotated = await hooks.api.post(f"/api/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"expires_in": 2})
    new = rotated.json()["secret"]
    hooks.receiver.secrets["/ok"] = [old, new]
    await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 1)
    during = hooks.receiver.on("/ok")[0]
    assert len(during.headers["webhook-signature"].split()) == 2
    assert during.verified == {old: True, new: True}
    await _sleep(2.1)
    await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 2)
    after = hooks.receiver.on("/ok")[1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert after.verified == {old: False, new: True}


async def test_pending_webhooks_counts_down_as_deliveries_finish(hooks: Hooks) -> None:
    await hooks.endpoint("/ok")
    await hooks.endpoint("/slow")  # times out 3 times (1 s each), then fails for good
    hooks.receiver.delay = 0.5  # /ok answers slowly, so both are still pending at first
    event_id = await hooks.customer()
    assert (await hooks.event(event_id))["pending_webhooks"] == 2
    await hooks.wait_attempts(1, event_id=event_id, status="succeeded")
    assert (await hooks.event(event_id))["pending_webhooks"] == 1
    await hooks.wait_attempts(3, event_id=event_id, status="failed", timeout=10)
    for _ in range(50):
        if (await hooks.event(event_id))["pending_webhooks"] == 0:
            break
        await _sleep(0.05)
    assert (await hooks.event(event_id))["pending_webhooks"] == 0


async def test_server_errors_retry_on_the_schedule_then_succeed(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/flaky")
    hooks.receiver.failures["/flaky"] = 2
    event_id = await hooks.customer()
    attempts = await hooks.wait_attempts(3, webhook_endpoint_id=endpoint["id"])
    oldest_first = list(reversed(attempts))
    assert [a["status"] for a in oldest_first] == ["failed", "failed", "succeeded"]
    assert [a["retry_count"] for a in oldest_first] == [0, 1, 2]
    assert oldest_first[0]["response_status"] == 500 and oldest_first[0]["response_body"] == "not yet"
    assert oldest_first[0]["error_type"] == "http_status" and oldest_first[0]["next_retry_at"]
    ids = {r.webhook_id for r in hooks.receiver.on("/flaky")}
    assert ids == {event_id}  # the same webhook-id on every retry
    assert (await hooks.event(event_id))["pending_webhooks"] == 0


async def test_timeout_and_refused_connection_fail_and_retry(hooks: Hooks) -> None:
    slow = await hooks.endpoint("/slow")
    closed = await hooks.api.post(
        "/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    )
    event_id = await hooks.customer()
    timed_out = await hooks.wait_attempts(3, timeout=15, webhook_endpoint_id=slow["id"])
    assert {a["error_type"] for a in timed_out} == {"timeout"}
    assert all(a["duration_ms"] >= 900 and a["status"] == "failed" for a in timed_out)
    refused = await hooks.wait_attempts(3, webhook_endpoint_id=closed.json()["id"])
    assert {a["error_type"] for a in refused} == {"connection_refused"}
    assert refused[0]["next_retry_at"] is None  # the last one: failed for good
    assert refused[-1]["next_retry_at"] is not None
    for _ in range(50):
        if (await hooks.event(event_id))["pending_webhooks"] == 0:
            break
        await _sleep(0.05)
    assert (await hooks.event(event_id))["pending_webhooks"] == 0


async def test_retry_after_is_honoured(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/busy")
    await hooks.customer()
    [attempt] = await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"])
    assert attempt["response_status"] == 503
    # The schedule says 0.2 s; the receiver asked for 3 s.
    assert attempt["next_retry"] - attempt["created"] >= 2
    await _sleep(1.0)
    assert len(hooks.receiver.on("/busy")) == 1


async def test_gone_disables_the_endpoint_and_emits_an_event(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/gone")
    event_id = await hooks.customer()
    [attempt] = await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"])
    assert attempt["response_status"] == 410 and attempt["next_retry_at"] is None
    await until(lambda: True)
    for _ in range(50):
        state = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}")).json()
        if state["status"] == "disabled":
            break
        await _sleep(0.05)
    assert state["status"] == "disabled"
    disabled = (await hooks.api.get("/api/events", params={"type": "webhook_endpoint.disabled"})).json()
    assert disabled["count"] == 1
    assert disabled["list"][0]["data"]["object"]["id"] == endpoint["id"]
    assert disabled["list"][0]["data"]["previous_attributes"]["status"] == "enabled"
    assert (await hooks.event(event_id))["pending_webhooks"] == 0
    await hooks.customer()
    await _sleep(0.5)
    assert len(hooks.receiver.on("/gone")) == 1  # disabled: nothing more is sent


async def test_a_dead_endpoint_does_not_delay_a_healthy_one(hooks: Hooks) -> None:
    await hooks.endpoint("/slow")  # never answers within the timeout
    await hooks.endpoint("/ok")
    hooks.receiver.delay = 0.05
    started = time.monotonic()
    for _ in range(30):
        await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 30, timeout=5)
    # 30 x 50 ms through at most 10 connections: well under the dead endpoint's 1 s timeout.
    assert time.monotonic() - started < 4
    assert hooks.receiver.path_max_in_flight["/ok"] <= 10  # the per-endpoint cap
    assert hooks.receiver.path_max_in_flight["/slow"] <= 10


async def test_redirects_are_not_followed(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/redirect")
    await hooks.customer()
    [attempt, *_] = await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"])
    assert attempt["status"] == "failed" and attempt["response_status"] == 302
    assert "redirect" in attempt["error"]
    assert hooks.receiver.on("/ok") == []


async def test_response_body_is_stored_truncated_to_4_kib(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/big")
    await hooks.customer()
    [attempt] = await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"])
    assert attempt["status"] == "succeeded"
    assert attempt["response_body"] == "x" * 4096


async def test_attempts_api_filters_and_pages(hooks: Hooks) -> None:
    ok = await hooks.endpoint("/ok")
    fail = await hooks.endpoint("/fail")
    first = await hooks.customer()
    second = await hooks.customer()
    await hooks.wait_attempts(8)  # 2 successes + 2 x 3 failures
    assert {a["event_id"] for a in await hooks.attempts(event_id=first)} == {first}
    assert len(await hooks.attempts(event_id=second, webhook_endpoint_id=ok["id"])) == 1
    failed = await hooks.attempts(status="failed")
    assert len(failed) == 6 and {a["webhook_endpoint_id"] for a in failed} == {fail["id"]}
    assert len(await hooks.attempts(status="succeeded")) == 2
    page = (await hooks.api.get("/api/webhook-attempts", params={"page": 2, "size": 3})).json()
    assert page["count"] == 8 and len(page["list"]) == 3 and page["paging"] == {"page": 2, "size": 3}
    assert (await hooks.api.get("/api/webhook-attempts", params={"status": "nope"})).status_code == 400
    # The other mode sees none of them.
    assert (await hooks.live.get("/api/webhook-attempts")).json()["count"] == 0


async def test_resend_to_one_endpoint_or_all_matching(hooks: Hooks) -> None:
    a = await hooks.endpoint("/ok")
    await hooks.endpoint("/flaky", events=["customer.created"])
    await hooks.endpoint("/big", events=["product.created"])  # does not match
    event_id = await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 1 and len(hooks.receiver.on("/flaky")) == 1)
    one = await hooks.api.post(f"/api/events/{event_id}/resend", json={"webhook_endpoint_id": a["id"]})
    assert one.status_code == 200, one.text
    assert one.json()["webhook_endpoint_ids"] == [a["id"]]
    await until(lambda: len(hooks.receiver.on("/ok")) == 2)
    every = await hooks.api.post(f"/api/events/{event_id}/resend")
    assert len(every.json()["webhook_endpoint_ids"]) == 2
    await until(lambda: len(hooks.receiver.on("/ok")) == 3 and len(hooks.receiver.on("/flaky")) == 2)
    assert hooks.receiver.on("/big") == []
    assert {r.webhook_id for r in hooks.receiver.received} == {event_id}
    await hooks.wait_attempts(5, event_id=event_id)
    assert (await hooks.api.post("/api/events/evt_nope/resend")).status_code == 404
    await hooks.api.put(f"/api/webhook-endpoints/{a['id']}", json={"status": "disabled"})
    refused = await hooks.api.post(f"/api/events/{event_id}/resend", json={"webhook_endpoint_id": a["id"]})
    assert refused.status_code == 409


async def test_recover_requeues_failed_deliveries_since_a_time(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/flaky")
    hooks.receiver.failures["/flaky"] = 3  # every attempt of the first delivery fails
    since = int(time.time())
    event_id = await hooks.customer()
    await hooks.wait_attempts(3, webhook_endpoint_id=endpoint["id"], status="failed")
    for _ in range(50):
        if (await hooks.event(event_id))["pending_webhooks"] == 0:
            break
        await _sleep(0.05)
    none = await hooks.api.post(f"/api/webhook-endpoints/{endpoint['id']}/recover", json={"since": since + 3600})
    assert none.json()["requeued"] == 0
    recovered = await hooks.api.post(f"/api/webhook-endpoints/{endpoint['id']}/recover", json={"since": since})
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["requeued"] == 1
    await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"], status="succeeded")
    assert (await hooks.event(event_id))["pending_webhooks"] == 0
    assert (await hooks.api.post("/api/webhook-endpoints/we_nope/recover", json={"since": 0})).status_code == 404
    bad = await hooks.api.post(f"/api/webhook-endpoints/{endpoint['id']}/recover", json={})
    assert bad.status_code == 400


async def test_disabled_endpoint_pauses_and_reenabling_resumes(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/ok")
    await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) == 1)
    # Events emitted while enabled, then the endpoint is disabled before they go out.
    await hooks.api.put(f"/api/webhook-endpoints/{endpoint['id']}", json={"status": "disabled"})
    async with hooks.app.db.transaction() as tx:
        from paywire.events.log import NewEvent, append

        await append(tx, [NewEvent("customer.created", {"id": "cus_x"})], livemode=False, now=time.time())
    # Nothing matches a disabled endpoint at append time; queue one explicitly to the paused one.
    event_id = (await hooks.api.get("/api/events", params={"size": 1})).json()["list"][0]["id"]
    async with hooks.app.db.transaction() as tx:
        from paywire.webhooks import delivery

        await delivery.enqueue(tx, event_id, [endpoint["id"]], livemode=False, now=time.time())
    await _sleep(0.6)
    assert len(hooks.receiver.on("/ok")) == 1
    await hooks.api.put(f"/api/webhook-endpoints/{endpoint['id']}", json={"status": "enabled"})
    await until(lambda: len(hooks.receiver.on("/ok")) == 2, timeout=3)
    assert hooks.receiver.on("/ok")[1].webhook_id == event_id


async def test_no_success_for_five_days_disables_the_endpoint(hooks: Hooks) -> None:
    endpoint = await hooks.endpoint("/fail")
    six_days_ago = time.time() - 6 * 86400
    async with hooks.app.db.transaction() as tx:
        await tx.conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint["id"])
            .values(failing_since=six_days_ago, last_success=six_days_ago)
        )
    await hooks.customer()
    await hooks.wait_attempts(1, webhook_endpoint_id=endpoint["id"])
    for _ in range(50):
        state = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}")).json()
        if state["status"] == "disabled":
            break
        await _sleep(0.05)
    assert state["status"] == "disabled"
    disabled = (await hooks.api.get("/api/events", params={"type": "webhook_endpoint.disabled"})).json()
    assert [e["data"]["object"]["id"] for e in disabled["list"]] == [endpoint["id"]]
    # A healthy endpoint that merely saw no traffic is not disabled by the rule.
    healthy = await hooks.endpoint("/ok")
    await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/ok")) >= 1)
    assert (await hooks.api.get(f"/api/webhook-endpoints/{healthy['id']}")).json()["status"] == "enabled"


async def test_live_mode_refuses_private_addresses_at_registration(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in (hooks.receiver.at("/ok"), "http://localhost:8000/x", "http://169.254.169.254/latest", "http://[::1]/x"):
        refused = await hooks.live.post("/api/webhook-endpoints", json={"url": url, "enabled_events": ["*"]})
        assert refused.status_code == 400, url
        assert refused.json()["error"]["param"] == "url"
    # Test mode allows local development.
    assert (await hooks.endpoint("/ok"))["livemode"] is False
    monkeypatch.setattr(hooks.app.settings, "allow_private_networks", True)  # PAYWIRE_ALLOW_PRIVATE_NETWORKS=1
    allowed = await hooks.live.post(
        "/api/webhook-endpoints", json={"url": hooks.receiver.at("/ok"), "enabled_events": ["*"]}
    )
    assert allowed.status_code == 200


async def test_live_mode_checks_the_address_actually_connected_to(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered while the operator allowed it (as DNS rebinding would slip past registration),
    # then delivered by a dispatcher that does not allow it: refused before connecting.
    monkeypatch.setattr(hooks.app.settings, "allow_private_networks", True)  # PAYWIRE_ALLOW_PRIVATE_NETWORKS=1
    port = hooks.receiver.url.rsplit(":", 1)[1]
    by_name = await hooks.live.post(
        "/api/webhook-endpoints", json={"url": f"http://localhost:{port}/ok", "enabled_events": ["*"]}
    )
    by_ip = await hooks.live.post(
        "/api/webhook-endpoints", json={"url": hooks.receiver.at("/ok"), "enabled_events": ["*"]}
    )
    monkeypatch.setattr(hooks.app.settings, "allow_private_networks", False)
    await hooks.customer(hooks.live)
    for endpoint in (by_name.json(), by_ip.json()):
        response = await hooks.live.get("/api/webhook-attempts", params={"webhook_endpoint_id": endpoint["id"]})
        for _ in range(100):
            if response.json()["count"]:
                break
            await _sleep(0.05)
            response = await hooks.live.get("/api/webhook-attempts", params={"webhook_endpoint_id": endpoint["id"]})
        attempt = response.json()["list"][0]
        assert attempt["status"] == "failed" and attempt["error_type"] == "ssrf_blocked", attempt
        assert attempt["response_status"] is None
    assert hooks.receiver.received == []

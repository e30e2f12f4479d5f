"""Authorization: test and live keys never see or touch each other's data; bad keys are 401s.

A real server with a real dispatcher delivers to a receiver on 127.0.0.1, so every resource type
(attempts included) exists in both modes before the other mode's key goes after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from paywire.app import PaywireApp
from paywire.cli.main import app as cli
from paywire.webhooks import netpolicy
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.hostile.seed import seed
from tests.integration.delivery_receiver import Receiver

DELIVERY = DeliveryConfig(timeout=2.0, schedule=(0.2,), jitter=0.0, poll_interval=0.1, allow_private_networks=True)

# (resource, path) a key of the other mode must find missing (404).
READS = [
    ("customer", "/api/customers/{id}"),
    ("product", "/api/products/{id}"),
    ("price", "/api/prices/{id}"),
    ("webhook_endpoint", "/api/webhook-endpoints/{id}"),
    ("webhook_endpoint", "/api/webhook-endpoints/{id}/secret"),
    ("event", "/api/events/{id}"),
    ("subscription", "/api/subscriptions/{id}"),
    ("checkout_session", "/api/checkout-sessions/{id}"),
    ("invoice", "/api/invoices/{id}"),
    ("payment_intent", "/api/payment-intents/{id}"),
    ("refund", "/api/refunds/{id}"),
    ("test_clock", "/api/test-clocks/{id}"),
    ("event_consumer", "/api/event-consumers/{id}"),
    ("payment_link", "/api/payment-links/{id}"),
]
# (resource, method, path, body) a key of the other mode must not be able to do (404).
WRITES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("customer", "PUT", "/api/customers/{id}", {"name": "hijacked"}),
    ("product", "PUT", "/api/products/{id}", {"name": "hijacked"}),
    ("price", "PUT", "/api/prices/{id}", {"nickname": "hijacked"}),
    ("webhook_endpoint", "PUT", "/api/webhook-endpoints/{id}", {"url": "http://127.0.0.1:9/stolen"}),
    ("webhook_endpoint", "POST", "/api/webhook-endpoints/{id}/rotate-secret", {"expires_in": 0}),
    ("webhook_endpoint", "POST", "/api/webhook-endpoints/{id}/recover", {"since": 0}),
    ("webhook_endpoint", "DELETE", "/api/webhook-endpoints/{id}", None),
    ("event", "POST", "/api/events/{id}/resend", {}),
    ("subscription", "PUT", "/api/subscriptions/{id}", {"metadata": {"hijacked": "yes"}}),
    ("subscription", "POST", "/api/subscriptions/{id}/pause", None),
    ("subscription", "POST", "/api/subscriptions/{id}/resume", None),
    ("subscription", "POST", "/api/subscriptions/{id}/cancel", {"at_period_end": False}),
    ("checkout_session", "POST", "/api/checkout-sessions/{id}/confirm", {"payment_method": "pm_card_visa"}),
    ("invoice", "POST", "/api/invoices/{id}/pay", {"payment_method": "pm_card_visa"}),
    ("payment_intent", "POST", "/api/payment-intents/{id}/refund", {}),
    ("test_clock", "POST", "/api/test-clocks/{id}/advance", {"frozen_time": 4_000_000_000}),
    ("payment_link", "PUT", "/api/payment-links/{id}", {"active": False}),
]
# Creating in one's own mode while naming the other mode's object: refused (400/404), nothing made.
REFERENCES: list[tuple[str, str, str, Any]] = [
    ("product", "POST", "/api/prices", lambda o, m: {"product_id": o, "unit_amount": "1.00", "currency": "usd"}),
    ("price", "POST", "/api/checkout-sessions", lambda o, m: {"mode": "payment", "line_items": [{"price_id": o}]}),
    (
        "customer",
        "POST",
        "/api/checkout-sessions",
        lambda o, m: {"mode": "payment", "customer_id": o, "line_items": [{"price_id": m["one_time_price"]}]},
    ),
    ("customer", "POST", "/api/subscriptions", lambda o, m: {"customer_id": o, "items": [{"price_id": m["price"]}]}),
    ("price", "POST", "/api/subscriptions", lambda o, m: {"customer_id": m["customer"], "items": [{"price_id": o}]}),
    ("test_clock", "POST", "/api/customers", lambda o, m: {"test_clock_id": o}),
    ("payment_intent", "POST", "/api/refunds", lambda o, m: {"payment_intent_id": o}),
    ("webhook_endpoint", "POST", "/api/events/{event}/resend", lambda o, m: {"webhook_endpoint_id": o}),
    ("event", "PUT", "/api/event-consumers/probe", lambda o, m: {"last_event_id": o}),
    ("price", "POST", "/api/payment-links", lambda o, m: {"line_items": [{"price_id": o}]}),
    ("customer", "POST", "/api/billing-portal/sessions", lambda o, m: {"customer_id": o}),
]
# List filters that name an object: the other mode's object matches nothing.
FILTERS = [
    ("customer", "/api/subscriptions", "customer_id"),
    ("customer", "/api/invoices", "customer_id"),
    ("customer", "/api/payment-intents", "customer_id"),
    ("customer", "/api/checkout-sessions", "customer_id"),
    ("subscription", "/api/invoices", "subscription_id"),
    ("product", "/api/prices", "product_id"),
    ("payment_intent", "/api/refunds", "payment_intent_id"),
    ("customer", "/api/events", "object_id"),
    ("event", "/api/webhook-attempts", "event_id"),
    ("webhook_endpoint", "/api/webhook-attempts", "webhook_endpoint_id"),
]
LISTS = [
    "/api/customers",
    "/api/products",
    "/api/prices",
    "/api/webhook-endpoints",
    "/api/events",
    "/api/webhook-attempts",
    "/api/subscriptions",
    "/api/checkout-sessions",
    "/api/invoices",
    "/api/payment-intents",
    "/api/refunds",
    "/api/test-clocks",
    "/api/payment-links",
]
RESOURCES = sorted({r for r, _ in READS} | {"webhook_attempt"})


@dataclass
class Mode:
    client: httpx.AsyncClient
    ids: dict[str, str]


@dataclass
class TwoModes:
    app: PaywireApp
    url: str
    test: Mode
    live: Mode

    def pair(self, direction: str) -> tuple[Mode, Mode]:
        """(attacker, victim) for "test->live" or "live->test"."""
        return (self.test, self.live) if direction == "test->live" else (self.live, self.test)


async def _settled(client: httpx.AsyncClient) -> None:
    """Wait until every event of this mode has been delivered (attempts exist, nothing pending)."""
    deadline = time.monotonic() + 15
    while True:
        events = (await client.get("/api/events", params={"size": 100})).json()["list"]
        if events and all(e["pending_webhooks"] == 0 for e in events):
            return
        assert time.monotonic() < deadline, "deliveries did not settle"
        await asyncio.sleep(0.05)


@pytest.fixture
async def modes(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TwoModes]:
    monkeypatch.setenv(netpolicy.ALLOW_ENV, "1")  # the live endpoint is the receiver on 127.0.0.1
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, DELIVERY))
    app.billing.live_provider = app.billing.provider  # live payments through the test card processor
    receiver = await Receiver().start()
    uv, task, url = await start_server(app)
    try:
        test_key, live_key = await new_key(app), await new_key(app, live=True)
        async with (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {test_key}"}, timeout=15) as test,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {live_key}"}, timeout=15) as live,
        ):
            modes = []
            for client in (test, live):
                ids = await seed(client, endpoint_url=receiver.at("/ok"))
                await _settled(client)
                attempts = (await client.get("/api/webhook-attempts")).json()["list"]
                ids["webhook_attempt"] = attempts[0]["id"]
                modes.append(Mode(client, ids))
            yield TwoModes(app, url, *modes)
    finally:
        await stop_server(uv, task)
        await receiver.stop()


async def _snapshot(mode: Mode) -> dict[str, Any]:
    """Everything the victim's own key can see: every object and every list."""
    seen: dict[str, Any] = {}
    for resource, path in READS:
        if resource in mode.ids:
            response = await mode.client.get(path.format(id=mode.ids[resource]))
            seen[path] = (response.status_code, response.json())
    for path in LISTS:
        seen[path] = (await mode.client.get(path, params={"size": 100})).json()
    return seen


def _ids_in(listing: dict[str, Any]) -> set[str]:
    return {item["id"] for item in listing["list"]}


@pytest.mark.parametrize("direction", ["test->live", "live->test"])
async def test_a_key_never_reads_or_changes_the_other_modes_data(modes: TwoModes, direction: str) -> None:
    attacker, victim = modes.pair(direction)
    assert set(victim.ids) >= set(RESOURCES) - ({"test_clock"} if direction == "test->live" else set())
    before = await _snapshot(victim)

    for resource, path in READS:
        if resource in victim.ids:
            response = await attacker.client.get(path.format(id=victim.ids[resource]))
            assert response.status_code == 404, (direction, path, response.text)
    for resource, method, path, body in WRITES:
        if resource in victim.ids:
            response = await attacker.client.request(method, path.format(id=victim.ids[resource]), json=body)
            assert response.status_code == 404, (direction, method, path, response.text)
    for resource, method, path, make in REFERENCES:
        if resource in victim.ids:
            target = path.format(event=attacker.ids["event"])
            response = await attacker.client.request(method, target, json=make(victim.ids[resource], attacker.ids))
            assert response.status_code in (400, 404), (direction, method, path, response.text)
    for resource, path, name in FILTERS:
        listing = (await attacker.client.get(path, params={name: victim.ids[resource]})).json()
        assert listing["count"] == 0, (direction, path, name, listing)
    victim_ids = set(victim.ids.values())
    for path in LISTS:
        assert not _ids_in((await attacker.client.get(path, params={"size": 100})).json()) & victim_ids, path

    await _settled(victim.client)
    assert await _snapshot(victim) == before  # not one field of the victim's data changed


async def test_a_revoked_key_is_a_401(modes: TwoModes, database_url: str) -> None:
    key = await new_key(modes.app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=modes.url, headers=headers, timeout=15) as client:
        assert (await client.get("/api/customers")).status_code == 200
        revoked = await asyncio.to_thread(
            CliRunner().invoke, cli, ["keys", "revoke", key, "--database-url", database_url]
        )
        assert revoked.exit_code == 0, revoked.output
        for method, path in (("GET", "/api/customers"), ("POST", "/api/customers"), ("GET", "/api/events")):
            response = await client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["type"] == "authentication_error"
        again = await client.post("/api/customers", json={}, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 401
    unknown = await asyncio.to_thread(
        CliRunner().invoke, cli, ["keys", "revoke", "sk_test_nope", "--database-url", database_url]
    )
    assert unknown.exit_code == 1
    assert (await modes.test.client.get("/api/customers")).status_code == 200  # other keys unaffected


def _bad_authorizations(valid: str) -> list[dict[str, str]]:
    return [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sk_test_" + "A" * 43},
        {"Authorization": "Bearer sk_live_" + "A" * 43},
        {"Authorization": f"Bearer {valid}x"},
        {"Authorization": f"Bearer {valid[:-1]}"},
        {"Authorization": f"Bearer {valid.upper()}"},
        {"Authorization": f"Bearer {valid.replace('sk_test_', 'sk_live_')}"},
        {"Authorization": f"Basic {valid}"},
        {"Authorization": f"Token {valid}"},
        {"Authorization": valid},
        {"Authorization": "Bearer " + "sk_test_" + "x" * 4_000},
        {"Authorization": "Bearer whsec_" + "A" * 44},
        {"Authorization": "Bearer sk_test_'; DROP TABLE api_keys; --"},
        {"X-Api-Key": valid},
    ]


async def test_wrong_and_malformed_keys_are_401(modes: TwoModes) -> None:
    valid = modes.test.client.headers["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(base_url=modes.url, timeout=15) as anonymous:
        for headers in _bad_authorizations(valid):
            for method, path in (
                ("GET", "/api/customers"),
                ("GET", f"/api/customers/{modes.test.ids['customer']}"),
                ("POST", "/api/customers"),
                ("DELETE", f"/api/webhook-endpoints/{modes.test.ids['webhook_endpoint']}"),
            ):
                extra = {"Idempotency-Key": "same"} if method == "POST" else {}
                body = {"name": "x"} if method == "POST" else None
                response = await anonymous.request(method, path, headers={**headers, **extra}, json=body)
                assert response.status_code == 401, (headers, method, path, response.text)
                error = response.json()["error"]
                assert error["type"] == "authentication_error" and set(error) == {"type", "code", "message", "param"}
                assert valid not in response.text
    assert (
        await modes.test.client.get(f"/api/webhook-endpoints/{modes.test.ids['webhook_endpoint']}")
    ).status_code == 200

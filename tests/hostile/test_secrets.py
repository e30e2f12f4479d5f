"""Secrets (`whsec_…` endpoint secrets, `sk_…` API keys) never leak.

Everything is logged at DEBUG while endpoints are created, rotated, delivered to (successes,
500s, 410s) and while requests fail in every way; then no log record, error body, event payload,
webhook body, list or retrieve response may contain any secret. Only create, `/secret` and
`/rotate-secret` may show an endpoint secret (the contract).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from paywire import keys
from paywire.app import PaywireApp
from paywire.webhooks import netpolicy
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.integration.delivery_receiver import Receiver, until

TEST_CLIENT_LOGGERS = ("httpx", "httpcore")  # this test's own client logs the keys it sends, by design
DELIVERY = DeliveryConfig(timeout=2.0, schedule=(0.2,), jitter=0.0, poll_interval=0.1, allow_private_networks=True)


class Leaks:
    """Collects every secret handed out and every text that must not contain one."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.texts: list[tuple[str, str]] = []  # (where, text)

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        if value.startswith("whsec_"):
            self.secrets.add(value.removeprefix("whsec_"))  # the key material alone
        return value

    def check(self, where: str, response: httpx.Response) -> httpx.Response:
        self.texts.append((f"{where} -> {response.status_code}", response.text))
        return response

    def found(self) -> list[str]:
        """Where a secret showed up (each place once; secrets cut to their non-secret prefix)."""
        return sorted(
            {f"{where}: {secret[:6]}…" for where, text in self.texts for secret in self.secrets if secret in text}
        )


@pytest.fixture
async def setting(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[PaywireApp, str, Receiver]]:
    monkeypatch.setenv(netpolicy.ALLOW_ENV, "1")
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, DELIVERY))
    receiver = await Receiver().start()
    uv, task, url = await start_server(app)
    try:
        yield app, url, receiver
    finally:
        await stop_server(uv, task)
        await receiver.stop()


async def _exercise(app: PaywireApp, url: str, receiver: Receiver, leaks: Leaks) -> tuple[str, str]:
    """Create, rotate, deliver and fail in both modes; returns the (test, live) keys."""
    test_key, live_key = leaks.secret(await new_key(app)), leaks.secret(await new_key(app, live=True))
    revoked = leaks.secret(await new_key(app))
    async with app.db.transaction() as tx:
        await keys.revoke_key(tx.conn, revoked, now=time.time())
    for key in (test_key, live_key):
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=15) as api:
            created = []
            for path in ("/ok", "/fail", "/gone"):
                response = await api.post(
                    "/api/webhook-endpoints", json={"url": receiver.at(path), "enabled_events": ["*"]}
                )
                assert response.status_code == 200, response.text
                created.append(response.json())
                receiver.secrets.setdefault(path, []).append(leaks.secret(response.json()["secret"]))
            endpoint_id = created[0]["id"]
            leaks.secret((await api.get(f"/api/webhook-endpoints/{endpoint_id}/secret")).json()["secret"])
            rotated = await api.post(f"/api/webhook-endpoints/{endpoint_id}/rotate-secret", json={"expires_in": 60})
            leaks.secret(rotated.json()["secret"])
            await api.post("/api/customers", json={"email": "a@example.com"})  # delivered to all three
            leaks.check("update", await api.put(f"/api/webhook-endpoints/{endpoint_id}", json={"description": "d"}))
            for bad in (
                api.post("/api/webhook-endpoints", json={"url": "ftp://x", "enabled_events": ["*"]}),
                api.post("/api/webhook-endpoints", json={"url": receiver.at("/ok"), "enabled_events": ["nope"]}),
                api.post("/api/webhook-endpoints", json={"url": receiver.at("/ok"), "secret": "whsec_x"}),
                api.put(f"/api/webhook-endpoints/{endpoint_id}", json={"status": "maybe"}),
                api.post(f"/api/webhook-endpoints/{endpoint_id}/rotate-secret", json={"expires_in": -1}),
                api.post("/api/webhook-endpoints/we_nope/rotate-secret", json={}),
                api.get("/api/webhook-endpoints/we_nope/secret"),
                api.post("/api/customers", content=b"{not json", headers={"content-type": "application/json"}),
                api.post("/api/customers", json={"x": 1}, headers={"Idempotency-Key": "k"}),
                api.post("/api/customers", json={"y": 2}, headers={"Idempotency-Key": "k"}),
                api.get("/api/customers", headers={"Authorization": f"Bearer {revoked}"}),
                api.get("/api/customers", headers={"Authorization": f"Bearer {key}0"}),
            ):
                leaks.check("error", await bad)
    await _wait_delivered(url, test_key, live_key)
    return test_key, live_key


async def _wait_delivered(url: str, *api_keys: str) -> None:
    for key in api_keys:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:

            async def attempts(api: httpx.AsyncClient = api) -> int:
                return int((await api.get("/api/webhook-attempts")).json()["count"])

            deadline = time.monotonic() + 15
            while await attempts() < 4:  # /ok, /gone, and /fail twice (one retry)
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)


async def _read_everything(url: str, key: str, leaks: Leaks) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=15) as api:
        endpoints = leaks.check("list endpoints", await api.get("/api/webhook-endpoints", params={"size": 100}))
        for endpoint in endpoints.json()["list"]:
            leaks.check("retrieve endpoint", await api.get(f"/api/webhook-endpoints/{endpoint['id']}"))
        events = leaks.check("list events", await api.get("/api/events", params={"size": 100}))
        for event in events.json()["list"]:
            leaks.check("retrieve event", await api.get(f"/api/events/{event['id']}"))
        leaks.check("list attempts", await api.get("/api/webhook-attempts", params={"size": 100}))


async def test_secrets_never_appear_in_logs_errors_events_or_lists(
    setting: tuple[PaywireApp, str, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    app, url, receiver = setting
    leaks = Leaks()
    caplog.set_level(logging.DEBUG)
    test_key, live_key = await _exercise(app, url, receiver, leaks)
    await until(lambda: len(receiver.on("/ok")) >= 2 and len(receiver.on("/gone")) >= 2)
    for api_key in (test_key, live_key):
        await _read_everything(url, api_key, leaks)
    for received in receiver.received:
        leaks.texts.append((f"webhook body to {received.path}", received.body.decode()))
    records = [r for r in caplog.records if not r.name.startswith(TEST_CLIENT_LOGGERS)]
    assert logging.getLogger("paywire.webhooks").isEnabledFor(logging.DEBUG)  # DEBUG was really on
    for record in records:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "args", ""))
        leaks.texts.append((f"log {record.name}", text))
    assert len(leaks.secrets) >= 12
    found = leaks.found()
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t@example.com/hook",
        "https://user@example.com/hook",
        "https://:s3cr3t@example.com/hook",
        "http://a%40b:c@127.0.0.1:9/hook",
    ],
)
async def test_webhook_urls_with_credentials_are_refused(api: httpx.AsyncClient, url: str) -> None:
    """Credentials in a URL would be stored and echoed by every retrieve and list: a 400."""
    created = await api.post("/api/webhook-endpoints", json={"url": url, "enabled_events": ["*"]})
    assert created.status_code == 400, created.text
    assert created.json()["error"]["param"] == "url" and "credentials" in created.json()["error"]["message"]
    assert "s3cr3t" not in created.text
    endpoint = (
        await api.post("/api/webhook-endpoints", json={"url": "https://example.com/hook", "enabled_events": ["*"]})
    ).json()
    updated = await api.put(f"/api/webhook-endpoints/{endpoint['id']}", json={"url": url})
    assert updated.status_code == 400 and updated.json()["error"]["param"] == "url", updated.text
    listed = (await api.get("/api/webhook-endpoints")).json()
    assert [e["url"] for e in listed["list"]] == ["https://example.com/hook"]

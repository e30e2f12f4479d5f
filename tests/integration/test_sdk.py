"""The SDK against a real server (SQLite and PostgreSQL): Payment Kit's pattern, typed results and errors,
idempotency. Sync calls run in a thread, since the server shares the test's event loop."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire import AsyncPaywire, Paywire
from paywire.billing import schemas as billing_schemas
from paywire.schemas import Customer, EventObject, WebhookEndpoint, WebhookEndpointWithSecret
from paywire.sdk import (
    AsyncListResult,
    AuthenticationError,
    DeletedObject,
    IdempotencyError,
    InvalidRequestError,
    ListResult,
    NotFoundError,
)
from tests.conftest import Server

# What the SDK does is the same on either database: most tests here run on SQLite only; Payment Kit's
# pattern and idempotency (where the server's storage matters) run on both.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

KIT_EVENTS = ["customer.subscription.started", "customer.subscription.renewed"]  # Payment Kit's example's types


def ensure_webhooks(payment: Paywire, callback_url: str) -> WebhookEndpoint:
    """Payment Kit's `ensureWebhooks`, in Python: update the first endpoint, or create one."""
    result = payment.webhook_endpoints.list(page=1, size=100)
    if result.list:
        return payment.webhook_endpoints.update(result.list[0].id, url=callback_url, enabled_events=KIT_EVENTS)
    return payment.webhook_endpoints.create(url=callback_url, enabled_events=KIT_EVENTS)


async def ensure_webhooks_async(payment: AsyncPaywire, callback_url: str) -> WebhookEndpoint:
    result = await payment.webhook_endpoints.list(page=1, size=100)
    if result.list:
        return await payment.webhook_endpoints.update(result.list[0].id, url=callback_url, enabled_events=KIT_EVENTS)
    return await payment.webhook_endpoints.create(url=callback_url, enabled_events=KIT_EVENTS)


def _payment_kit_pattern_sync(server: Server) -> None:
    with Paywire(server.test_key, server.url) as payment:
        created = ensure_webhooks(payment, "http://127.0.0.1:9/api/payment/callback")
        assert isinstance(created, WebhookEndpointWithSecret) and created.secret.startswith("whsec_")
        updated = ensure_webhooks(payment, "http://127.0.0.1:9/api/payment/callback2")
        assert type(updated) is WebhookEndpoint and updated.id == created.id
        assert updated.url.endswith("/callback2") and updated.enabled_events == KIT_EVENTS
        listed = payment.webhook_endpoints.list(page=1, size=100)
        assert listed.count == 1 and listed.paging.size == 100
        assert "secret" not in (listed.list[0].model_extra or {})
        assert payment.webhook_endpoints.secret(created.id).secret == created.secret


async def test_payment_kit_ensure_webhooks_sync_then_async(server: Server) -> None:
    await asyncio.to_thread(_payment_kit_pattern_sync, server)
    # A restart of the same application, now async: it finds the endpoint and updates it.
    async with AsyncPaywire(server.test_key, server.url) as payment:
        updated = await ensure_webhooks_async(payment, "http://127.0.0.1:9/hook3")
        assert type(updated) is WebhookEndpoint and updated.url.endswith("/hook3")
        assert (await payment.webhook_endpoints.list(page=1, size=100)).count == 1


@sqlite_only
async def test_the_docs_ensure_webhooks_runs_as_shown(server: Server) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", docs, re.S) if "def ensure_webhooks" in b)
    namespace: dict[str, Any] = {
        "Paywire": Paywire,
        "logger": logging.getLogger("docs"),
        "get_url": lambda path: f"http://127.0.0.1:9{path}",
    }
    exec(block, namespace)

    def run_twice() -> None:
        with Paywire(server.test_key, server.url) as payment:
            namespace["ensure_webhooks"](payment)
            namespace["ensure_webhooks"](payment)
            endpoints = payment.webhook_endpoints.list(page=1, size=100)
            assert endpoints.count == 1 and endpoints.list[0].url == "http://127.0.0.1:9/api/payment/callback"

    await asyncio.to_thread(run_twice)


@sqlite_only
async def test_errors_are_typed_and_carry_the_body(server: Server) -> None:
    async with AsyncPaywire("sk_test_wrong", server.url) as stranger:
        with pytest.raises(AuthenticationError) as denied:
            await stranger.customers.list()
    assert denied.value.status == 401 and denied.value.type == "authentication_error"
    assert denied.value.body["error"]["code"] == denied.value.code
    assert (denied.value.request_id or "").startswith("req_")

    async with AsyncPaywire(server.test_key, server.url) as payment:
        with pytest.raises(InvalidRequestError) as bad:
            await payment.webhook_endpoints.create(url="ftp://example.com/hook", enabled_events=["*"])
        assert bad.value.status == 400 and bad.value.param == "url"
        error = {"type": bad.value.type, "code": bad.value.code, "message": bad.value.message, "param": "url"}
        assert bad.value.body == {"error": error}

        with pytest.raises(NotFoundError) as missing:
            await payment.customers.retrieve("cus_missing")
        assert isinstance(missing.value, InvalidRequestError) and missing.value.status == 404
        assert "cus_missing" in str(missing.value)

        await payment.customers.create(name="A", idempotency_key="same-key")
        with pytest.raises(IdempotencyError) as reused:
            await payment.customers.create(name="B", idempotency_key="same-key")
        assert reused.value.status == 409 and reused.value.code == "idempotency_key_reused"
        assert reused.value.param == "Idempotency-Key"


class LoseFirstPostResponse(httpx.AsyncHTTPTransport):
    """The real network, except that the first POST's answer is lost after the server acted on it."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST":
            self.keys.append(request.headers["idempotency-key"])
            if len(self.keys) == 1:
                await response.aread()
                await response.aclose()
                raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


async def test_idempotency_keys_make_a_post_act_once(server: Server) -> None:
    async with AsyncPaywire(server.test_key, server.url) as payment:
        # The same call sent twice with your key: one customer, the same answer.
        first = await payment.customers.create(email="a@example.com", idempotency_key="signup-42")
        again = await payment.customers.create(email="a@example.com", idempotency_key="signup-42")
        assert again == first

    # The automatic key: the first answer is lost, the retry carries the same key and is replayed.
    transport = LoseFirstPostResponse()
    async with AsyncPaywire(server.test_key, server.url, retry_delay=0.01, transport=transport) as payment:
        customer = await payment.customers.create(name="Once")
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        assert {c.id for c in (await payment.customers.list()).list} == {first.id, customer.id}
        assert (await payment.events.list(type="customer.created")).count == 2


@sqlite_only
async def test_core_resources_round_trip(server: Server) -> None:
    async with AsyncPaywire(server.test_key, server.url) as payment:
        customer = await payment.customers.create(email="ada@example.com", metadata={"plan": "pro"})
        assert isinstance(customer, Customer) and customer.id.startswith("cus_")
        customer = await payment.customers.update(customer.id, name="Ada")
        assert (await payment.customers.retrieve(customer.id)).name == "Ada"
        assert (await payment.customers.list(email="ada@example.com")).count == 1

        product = await payment.products.create(name="Pro")
        price = await payment.prices.create(
            product_id=product.id, unit_amount="19.99", currency="usd", recurring={"interval": "month"}
        )
        assert price.unit_amount == "19.99" and price.recurring is not None
        assert (await payment.prices.update(price.id, nickname="monthly")).nickname == "monthly"
        assert [p.id for p in (await payment.prices.list(product_id=product.id)).list] == [price.id]
        assert (await payment.products.update(product.id, active=False)).active is False

        events = await payment.events.list(object_id=customer.id)
        assert [e.type for e in events.list] == ["customer.updated", "customer.created"]
        assert all(isinstance(e, EventObject) for e in events.list)
        event = await payment.events.retrieve(events.list[-1].id)
        assert event.data.object["email"] == "ada@example.com"
        assert (await payment.events.list(type="customer.*")).count == 2

        endpoint = await payment.webhook_endpoints.create(url="http://127.0.0.1:9/hook", enabled_events=["*"])
        resent = await payment.events.resend(event.id, webhook_endpoint_id=endpoint.id)
        assert resent.webhook_endpoint_ids == [endpoint.id]
        attempts = await payment.webhook_attempts.list(event_id=event.id)
        assert all(a.event_id == event.id for a in attempts.list)
        rotated = await payment.webhook_endpoints.rotate_secret(endpoint.id, expires_in=0)
        assert rotated.secret != endpoint.secret
        recovered = await payment.webhook_endpoints.recover(endpoint.id, since=int(time.time()) - 60)
        assert recovered.webhook_endpoint_id == endpoint.id
        disabled = await payment.webhook_endpoints.update(endpoint.id, status="disabled")
        assert disabled.status == "disabled"
        deleted = await payment.webhook_endpoints.delete(endpoint.id)
        assert isinstance(deleted, DeletedObject) and deleted.deleted
        with pytest.raises(NotFoundError):
            await payment.webhook_endpoints.retrieve(endpoint.id)


def _walk_pages_sync(server: Server) -> None:
    with Paywire(server.test_key, server.url) as payment:
        ids = [payment.products.create(name=f"p{i}").id for i in range(12)]
        first = payment.products.list(size=5)
        assert first.has_more and first.count == 12
        assert [p.id for p in first.auto_paging_iter()] == list(reversed(ids))


@sqlite_only
async def test_auto_paging_sync_and_async(server: Server) -> None:
    await asyncio.to_thread(_walk_pages_sync, server)
    async with AsyncPaywire(server.test_key, server.url) as payment:
        first = await payment.products.list(size=5)
        ids = [p.id async for p in first.auto_paging_iter()]
        assert len(ids) == len(set(ids)) == 12
        last = await payment.products.list(page=3, size=5)
        assert not last.has_more and await last.next_page() is None


@sqlite_only
async def test_env_vars_configure_the_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYWIRE_API_KEY", server.live_key)
    monkeypatch.setenv("PAYWIRE_URL", server.url + "/")
    async with AsyncPaywire() as payment:
        assert (await payment.customers.create(name="Live")).livemode is True

    def sync_list() -> int:
        with Paywire() as payment:
            return payment.customers.list().count

    assert await asyncio.to_thread(sync_list) == 1


@sqlite_only
async def test_billing_resources(server: Server) -> None:
    async with AsyncPaywire(server.test_key, server.url) as payment:
        product = await payment.products.create(name="Pro")
        monthly = await payment.prices.create(
            product_id=product.id, unit_amount="10.00", currency="usd", recurring={"interval": "month"}
        )
        once = await payment.prices.create(product_id=product.id, unit_amount="5.00", currency="usd")
        customer = await payment.customers.create(email="b@example.com")

        session = await payment.checkout.sessions.create(
            mode="payment", line_items=[{"price_id": once.id, "quantity": 2}], customer_id=customer.id
        )
        assert isinstance(session, billing_schemas.CheckoutSession) and session.id.startswith("cs_")
        paid = await payment.checkout.sessions.confirm(session.id, payment_method="pm_card_visa")
        assert paid.status == "complete" and paid.payment_intent_id
        intent = await payment.payment_intents.retrieve(paid.payment_intent_id)
        assert isinstance(intent, billing_schemas.PaymentIntent) and intent.amount == "10.00"
        refund = await payment.payment_intents.refund(intent.id, amount="4.00")
        assert isinstance(refund, billing_schemas.Refund) and refund.amount == "4.00"
        assert [r.id for r in (await payment.refunds.list()).list] == [refund.id]

        clock = await payment.test_clocks.create(frozen_time=int(time.time()))
        subscription = await payment.subscriptions.create(
            customer_id=customer.id, items=[{"price_id": monthly.id}], default_payment_method="pm_card_visa"
        )
        assert isinstance(subscription, billing_schemas.Subscription) and subscription.status == "active"
        assert (await payment.subscriptions.pause(subscription.id)).status == "paused"
        assert (await payment.subscriptions.resume(subscription.id)).status == "active"
        canceled = await payment.subscriptions.cancel(subscription.id)
        assert canceled.status == "canceled"
        assert (await payment.invoices.list(subscription_id=subscription.id)).count >= 1
        advanced = await payment.test_clocks.advance(clock.id, frozen_time=clock.frozen_time + 60)
        assert isinstance(advanced, billing_schemas.TestClock) and advanced.frozen_time == clock.frozen_time + 60


def _billing_types_sync(server: Server) -> None:
    # The annotations are the check for a type checker: each call returns the server's model.
    with Paywire(server.test_key, server.url) as payment:
        product = payment.products.create(name="Typed")
        monthly = payment.prices.create(
            product_id=product.id, unit_amount="10.00", currency="usd", recurring={"interval": "month"}
        )
        once = payment.prices.create(product_id=product.id, unit_amount="5.00", currency="usd")
        customer = payment.customers.create(email="typed@example.com")

        session: billing_schemas.CheckoutSession = payment.checkout.sessions.create(
            mode="payment", line_items=[{"price_id": once.id, "quantity": 1}], customer_id=customer.id
        )
        paid: billing_schemas.CheckoutSession = payment.checkout.sessions.confirm(
            session.id, payment_method="pm_card_visa"
        )
        assert isinstance(session, billing_schemas.CheckoutSession)
        assert isinstance(paid, billing_schemas.CheckoutSession)
        sessions: ListResult[billing_schemas.CheckoutSession] = payment.checkout.sessions.list()
        assert sessions.list and all(isinstance(s, billing_schemas.CheckoutSession) for s in sessions.list)
        assert paid.payment_intent_id is not None
        intent: billing_schemas.PaymentIntent = payment.payment_intents.retrieve(paid.payment_intent_id)
        assert isinstance(intent, billing_schemas.PaymentIntent)
        intents: ListResult[billing_schemas.PaymentIntent] = payment.payment_intents.list()
        assert all(isinstance(i, billing_schemas.PaymentIntent) for i in intents.list)
        refund: billing_schemas.Refund = payment.payment_intents.refund(intent.id, amount="1.00")
        again: billing_schemas.Refund = payment.refunds.retrieve(refund.id)
        assert isinstance(refund, billing_schemas.Refund) and isinstance(again, billing_schemas.Refund)
        refunds: ListResult[billing_schemas.Refund] = payment.refunds.list()
        assert refunds.list and all(isinstance(r, billing_schemas.Refund) for r in refunds.list)

        clock: billing_schemas.TestClock = payment.test_clocks.create(frozen_time=int(time.time()))
        clock = payment.test_clocks.advance(clock.id, frozen_time=clock.frozen_time + 60)
        assert isinstance(clock, billing_schemas.TestClock) and isinstance(clock.frozen_time, int)
        clocks: ListResult[billing_schemas.TestClock] = payment.test_clocks.list()
        assert all(isinstance(c, billing_schemas.TestClock) for c in clocks.list)

        sub: billing_schemas.Subscription = payment.subscriptions.create(
            customer_id=customer.id, items=[{"price_id": monthly.id}], default_payment_method="pm_card_visa"
        )
        sub = payment.subscriptions.update(sub.id, metadata={"typed": "yes"})
        assert isinstance(sub, billing_schemas.Subscription) and sub.metadata == {"typed": "yes"}
        subs: ListResult[billing_schemas.Subscription] = payment.subscriptions.list()
        assert subs.list and all(isinstance(s, billing_schemas.Subscription) for s in subs.list)
        invoices: ListResult[billing_schemas.Invoice] = payment.invoices.list(subscription_id=sub.id)
        assert invoices.list and all(isinstance(i, billing_schemas.Invoice) for i in invoices.list)
        invoice: billing_schemas.Invoice = payment.invoices.retrieve(invoices.list[0].id)
        assert isinstance(invoice, billing_schemas.Invoice) and isinstance(invoice.status, str)

        link: billing_schemas.PaymentLink = payment.payment_links.create(line_items=[{"price_id": once.id}])
        links: ListResult[billing_schemas.PaymentLink] = payment.payment_links.list()
        assert isinstance(link, billing_schemas.PaymentLink)
        assert all(isinstance(x, billing_schemas.PaymentLink) for x in links.list)
        portal: billing_schemas.PortalSession = payment.billing_portal.sessions.create(customer_id=customer.id)
        assert isinstance(portal, billing_schemas.PortalSession) and portal.url


@sqlite_only
async def test_billing_results_are_the_server_models(server: Server) -> None:
    await asyncio.to_thread(_billing_types_sync, server)
    async with AsyncPaywire(server.test_key, server.url) as payment:
        subs: AsyncListResult[billing_schemas.Subscription] = await payment.subscriptions.list()
        assert subs.list and all(isinstance(s, billing_schemas.Subscription) for s in subs.list)
        sub: billing_schemas.Subscription = await payment.subscriptions.cancel(subs.list[0].id)
        assert isinstance(sub, billing_schemas.Subscription) and sub.status == "canceled"
        refund: billing_schemas.Refund = (await payment.refunds.list()).list[0]
        assert isinstance(refund, billing_schemas.Refund)
        clocks = [c async for c in (await payment.test_clocks.list(size=1)).auto_paging_iter()]
        assert clocks and all(isinstance(c, billing_schemas.TestClock) for c in clocks)


@sqlite_only
async def test_stream_yields_the_servers_events_and_refuses_a_bad_key_typed(server: Server) -> None:
    """`AsyncPaywire.stream`, the one connection the EventBus's remote source is built on."""
    async with AsyncPaywire(server.test_key, server.url) as client:
        created = await client.customers.create(name="streamed")
        async with client.stream("/api/events/stream", params={"after": "start", "types": None}) as messages:
            received = []
            async for message in messages:
                received.append(message)
                if len(received) == 2:
                    break
        assert [kind for kind, _ in received] == ["ready", "customer.created"]
        assert created.id in received[1][1].decode()
    async with AsyncPaywire("sk_test_wrong", server.url) as client:
        with pytest.raises(AuthenticationError, match="401"):
            async with client.stream("/api/events/stream"):
                pass


@sqlite_only
async def test_the_sync_client_streams_too(server: Server, api: httpx.AsyncClient) -> None:
    created = (await api.post("/api/products", json={"name": "streamed"})).json()["id"]

    def first_two() -> list[tuple[str, bytes]]:
        with (
            Paywire(server.test_key, server.url) as client,
            client.stream("/api/events/stream", params={"after": "start"}) as messages,
        ):
            return [next(messages), next(messages)]

    received = await asyncio.to_thread(first_two)
    assert [kind for kind, _ in received] == ["ready", "product.created"]
    assert created in received[1][1].decode()

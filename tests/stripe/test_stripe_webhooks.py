"""`POST /api/integrations/stripe/webhook`: Stripe-Signature checked, repeats ignored, and what
Stripe reports later applied. SQLite and PostgreSQL.

- A charge whose answer was lost (the provider call raised after localstripe charged) stays
  `processing`; localstripe's own `payment_intent.succeeded` webhook (registered through its
  `/_config/webhooks/…`) finishes it, with the flow's events.
- localstripe sends no refund or dispute events: those payloads are signed here with the
  webhook secret, exactly as Stripe signs them (`t=…,v1=HMAC-SHA256(secret, "t.payload")`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from paywire.providers.base import ChargeResult, ProviderUnavailable
from tests.conftest import Server
from tests.integration.test_billing_timelines import Timeline, ok, price
from tests.stripe.conftest import LocalStripe

SECRET = "whsec_paywire_localstripe"
HOOK = "/api/integrations/stripe/webhook"


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event).encode()
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


async def _post(server: Server, event: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    payload, headers = signed(event, secret)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        return await client.post(HOOK, content=payload, headers=headers)


async def _paid_checkout(api: httpx.AsyncClient, amount: str = "25.00") -> dict[str, Any]:
    item = await price(api, amount, interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    confirm = f"/api/checkout-sessions/{session['id']}/confirm"
    return await ok(api.post(confirm, json={"payment_method": "pm_card_visa"}))


async def test_a_bad_signature_is_refused(stripe_server: Server) -> None:
    event = {"id": "evt_forged", "type": "charge.dispute.created", "data": {"object": {"id": "dp_x"}}}
    answer = await _post(stripe_server, event, secret="whsec_wrong")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "Stripe-Signature"
    async with httpx.AsyncClient(base_url=stripe_server.url) as client:
        unsigned = await client.post(HOOK, content=json.dumps(event))
    assert unsigned.status_code == 400


async def test_localstripes_webhook_settles_a_charge_whose_answer_was_lost(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = stripe_api
    provider = stripe_server.app.billing.provider
    real = provider.charge

    async def lost(**kwargs: Any) -> ChargeResult:
        await real(**kwargs)  # Stripe charges …
        raise ProviderUnavailable("connection reset")  # … and the answer never arrives

    monkeypatch.setattr(provider, "charge", lost)
    async with localstripe.client() as stripe:
        registered = await stripe.post(
            "/_config/webhooks/paywire",
            json={"url": stripe_server.url + HOOK, "secret": SECRET, "events": ["payment_intent.succeeded"]},
        )
        assert registered.status_code == 200
    try:
        timeline = Timeline(api)
        item = await price(api, "15.00", interval=None)
        session = await ok(
            api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]})
        )
        await timeline.take()
        confirm = f"/api/checkout-sessions/{session['id']}/confirm"
        answer = await api.post(confirm, json={"payment_method": "pm_card_visa"})
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "payment_processing", answer.text
        pending = (await ok(api.get("/api/payment-intents", params={"status": "processing"})))["list"]
        assert len(pending) == 1
        deadline = time.monotonic() + 15
        while (await ok(api.get(f"/api/checkout-sessions/{session['id']}")))["status"] != "complete":
            assert time.monotonic() < deadline, "localstripe's webhook did not settle the charge"
            await asyncio.sleep(0.2)
        assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
        intent = await ok(api.get(f"/api/payment-intents/{pending[0]['id']}"))
        assert intent["status"] == "succeeded"
        assert [p["status"] for p in await localstripe.payment_intents(intent["id"])] == ["succeeded"]
    finally:
        async with localstripe.client() as stripe:  # stop sending to this server
            await stripe.post(
                "/_config/webhooks/paywire", json={"url": stripe_server.url + HOOK, "secret": SECRET, "events": ["-"]}
            )


async def test_a_dispute_becomes_a_paywire_event_once(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    done = await _paid_checkout(api)
    stripe_pi = (await localstripe.payment_intents(done["payment_intent_id"]))[0]["id"]
    dispute = {
        "id": "dp_" + stripe_pi[3:], "object": "dispute", "amount": 2500, "currency": "usd", "reason": "fraudulent",
        "status": "needs_response", "payment_intent": stripe_pi, "created": 1_767_225_600,
    }  # fmt: skip
    event = {"id": "evt_dispute_" + stripe_pi, "type": "charge.dispute.created", "data": {"object": dispute}}
    first = await _post(stripe_server, event)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    again = await _post(stripe_server, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    events = (await ok(api.get("/api/events", params={"type": "charge.dispute.created"})))["list"]
    ours = [e for e in events if e["data"]["object"]["payment_intent_id"] == done["payment_intent_id"]]
    assert len(ours) == 1
    obj = ours[0]["data"]["object"]
    assert obj["object"] == "dispute" and obj["amount"] == "25.00" and obj["reason"] == "fraudulent"


async def test_a_refund_stripe_fails_later_is_refundable_again(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    done = await _paid_checkout(api, "30.00")
    refund = await ok(api.post(f"/api/payment-intents/{done['payment_intent_id']}/refund", json={"amount": "10.00"}))
    stripe_pi = (await localstripe.payment_intents(done["payment_intent_id"]))[0]["id"]
    [stripe_refund] = await localstripe.refunds(stripe_pi)
    failed = {**stripe_refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    event = {"id": "evt_refund_failed_" + stripe_refund["id"], "type": "refund.updated", "data": {"object": failed}}
    assert (await _post(stripe_server, event)).status_code == 200
    assert (await ok(api.get(f"/api/refunds/{refund['id']}")))["status"] == "failed"
    intent = await ok(api.get(f"/api/payment-intents/{done['payment_intent_id']}"))
    assert intent["amount_refunded"] == "0.00"
    # Paywire's `refund.failed` says the money did not go back; Stripe's other event type for the
    # same change (`charge.refund.updated`) changes nothing more.
    again = {**event, "id": "evt_charge_refund_updated_" + stripe_refund["id"], "type": "charge.refund.updated"}
    assert (await _post(stripe_server, again)).status_code == 200
    reported = (await ok(api.get("/api/events", params={"type": "refund.failed"})))["list"]
    assert [e["data"]["object"]["id"] for e in reported] == [refund["id"]]
    assert reported[0]["data"]["object"]["status"] == "failed"
    assert reported[0]["data"]["object"]["amount"] == "10.00"
    whole = await ok(api.post(f"/api/payment-intents/{done['payment_intent_id']}/refund", json={}))
    assert whole["amount"] == "30.00"


async def test_stripes_webhook_completes_a_checkout_the_payer_authenticated(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    """3-D Secure: the payer authenticated and Stripe charged, but the page never confirmed
    again; Stripe's `payment_intent.succeeded` completes the checkout, with its events."""
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "18.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    async with localstripe.client() as stripe:
        card = {"number": "4000002500003155", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
        pm = (await stripe.post("/v1/payment_methods", json={"type": "card", "card": card})).json()["id"]
    first = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": pm})
    assert first.status_code == 402 and first.json()["error"]["payment_intent"]["status"] == "requires_action"
    secret = first.json()["error"]["payment_intent"]["next_action"]["client_secret"]
    stripe_pi = secret.split("_secret_")[0]
    async with localstripe.client() as stripe:
        passed = {"client_secret": secret, "success": True}  # what the fake Stripe.js posts
        await stripe.post(f"/v1/payment_intents/{stripe_pi}/_authenticate", json=passed)
        succeeded = (await stripe.get(f"/v1/payment_intents/{stripe_pi}")).json()
    assert succeeded["status"] == "succeeded"
    await timeline.take()
    event = {"id": "evt_succeeded_" + stripe_pi, "type": "payment_intent.succeeded", "data": {"object": succeeded}}
    assert (await _post(stripe_server, event)).json() == {"received": True, "duplicate": False}
    done = await ok(api.get(f"/api/checkout-sessions/{session['id']}"))
    assert done["status"] == "complete" and done["payment_status"] == "paid"
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    again = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": pm})
    assert again.status_code == 409  # the page's late confirm: already complete, nothing charged
    assert [p["status"] for p in await localstripe.payment_intents(done["payment_intent_id"])] == ["succeeded"]

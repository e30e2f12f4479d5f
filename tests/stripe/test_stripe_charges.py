"""Charging through Stripe (localstripe): checkout, declines, 3-D Secure, subscriptions, renewals
off-session on a test clock, dunning after a decline, upgrades, refunds. Each test on SQLite
and PostgreSQL. The event types and their order are the contract's (docs/timelines.md), the
same as with the built-in test provider.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import reconcile
from paywire.billing.scheduler import run_due
from paywire.db.schema import customers
from paywire.providers.base import ChargeResult, ProviderUnavailable
from tests.conftest import Server, new_key, start_server, stop_server
from tests.integration.test_billing_timelines import DAY, T0, Timeline, advance, clock_customer, ok, price, subscribe
from tests.stripe.conftest import LocalStripe, stripe_settings

VISA = "pm_card_visa"


async def _stripe_customer(server: Server, customer_id: str) -> str:
    async with server.app.db.read() as conn:
        ref = await conn.scalar(sa.select(customers.c.provider_customer_ref).where(customers.c.id == customer_id))
    assert ref and str(ref).startswith("cus_")
    return str(ref)


async def _one_succeeded(localstripe: LocalStripe, intent_id: str, amount: int) -> dict[str, Any]:
    found = await localstripe.payment_intents(intent_id)
    assert [p["status"] for p in found] == ["succeeded"], found
    assert found[0]["amount"] == amount
    return found[0]


async def test_checkout_pays_through_stripe(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "19.99", interval=None)
    customer = await ok(api.post("/api/customers", json={"email": "s@example.com"}))
    session = await ok(
        api.post("/api/checkout-sessions", json={"mode": "payment", "customer_id": customer["id"],
                                                 "line_items": [{"price_id": item}]})
    )  # fmt: skip
    await timeline.take()
    done = await ok(api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": VISA}))
    assert done["status"] == "complete" and done["payment_status"] == "paid"
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    intent = await ok(api.get(f"/api/payment-intents/{done['payment_intent_id']}"))
    assert intent["status"] == "succeeded" and intent["amount_received"] == "19.99"
    charged = await _one_succeeded(localstripe, intent["id"], 1999)
    assert charged["customer"] == await _stripe_customer(stripe_server, customer["id"])


async def test_checkout_decline_carries_stripes_error(stripe_api: httpx.AsyncClient, localstripe: LocalStripe) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "12.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    await timeline.take()
    # localstripe declines 4000000000000002 (pm_card_visa_chargeDeclined) only when it is saved
    # to a customer; 4000000000000341 is declined when charged, as both are on Stripe.
    declined = await api.post(
        f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_chargeCustomerFail"}
    )
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    assert error["type"] == "card_error" and error["code"] == "card_declined"
    assert error["message"] == "Your card was declined."  # Stripe's (localstripe's) message
    assert await timeline.types() == ["payment_intent.payment_failed"]
    failed = error["payment_intent"]
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "card_declined"
    # Another card pays the same payment intent.
    done = await ok(api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": VISA}))
    assert done["payment_intent_id"] == failed["id"]
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    found = await localstripe.payment_intents(failed["id"])
    assert sorted(p["status"] for p in found) == ["requires_payment_method", "succeeded"]


async def test_checkout_3d_secure_requires_action_then_pays(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "30.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    async with localstripe.client() as stripe:  # what Stripe.js does in the browser
        card = {"number": "4000002500003155", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
        pm = (await stripe.post("/v1/payment_methods", json={"type": "card", "card": card})).json()["id"]
    await timeline.take()
    first = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": pm})
    assert first.status_code == 402, first.text
    error = first.json()["error"]
    assert error["code"] == "authentication_required"
    intent = error["payment_intent"]
    assert intent["status"] == "requires_action"
    secret = intent["next_action"]["client_secret"]
    assert secret and secret.startswith("pi_")
    stripe_pi = secret.split("_secret_")[0]
    async with localstripe.client() as stripe:  # the payer passes 3-D Secure
        authenticated = await stripe.post(
            f"/v1/payment_intents/{stripe_pi}/_authenticate", json={"client_secret": secret, "success": True}
        )
        assert authenticated.status_code == 200, authenticated.text
    assert (await ok(api.get(f"/api/checkout-sessions/{session['id']}")))["status"] == "open"
    done = await ok(api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": pm}))
    assert done["status"] == "complete" and done["payment_intent_id"] == intent["id"]
    assert (await timeline.types())[-2:] == ["payment_intent.succeeded", "checkout.session.completed"]
    await _one_succeeded(localstripe, intent["id"], 3000)


async def test_renewal_charges_the_saved_card_off_session(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    plan = await price(api, "10.00")
    clock, customer = await clock_customer(api)
    sub = await subscribe(api, customer, plan)
    assert sub["status"] == "active"
    first = await ok(api.get(f"/api/invoices/{sub['latest_invoice_id']}"))
    ref = await _stripe_customer(stripe_server, customer)
    assert (await _one_succeeded(localstripe, first["payment_intent_id"], 1000))["customer"] == ref
    await timeline.take()
    await advance(api, clock, T0 + 31 * DAY)
    assert await timeline.types() == [
        "payment_intent.succeeded", "invoice.paid", "customer.subscription.renewed", "customer.subscription.updated",
    ]  # fmt: skip
    renewed = await ok(api.get(f"/api/subscriptions/{sub['id']}"))
    invoice = await ok(api.get(f"/api/invoices/{renewed['latest_invoice_id']}"))
    assert invoice["status"] == "paid" and invoice["billing_reason"] == "subscription_cycle"
    assert (await _one_succeeded(localstripe, invoice["payment_intent_id"], 1000))["customer"] == ref


async def test_renewal_decline_follows_dunning_with_stripes_decline(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    plan = await price(api, "10.00")
    clock, customer = await clock_customer(api)
    # 4000000000000341: saving it works, every charge is declined (a trial saves it).
    sub = await subscribe(api, customer, plan, pm="pm_card_chargeCustomerFail", trial_days=7)
    assert sub["status"] == "trialing"
    await timeline.take()
    await advance(api, clock, T0 + 7 * DAY)
    assert await timeline.types() == [
        "customer.subscription.trial_will_end", "customer.subscription.trial_end",
        "payment_intent.payment_failed", "customer.subscription.updated",
    ]  # fmt: skip
    after = await ok(api.get(f"/api/subscriptions/{sub['id']}"))
    assert after["status"] == "past_due"
    invoice = await ok(api.get(f"/api/invoices/{after['latest_invoice_id']}"))
    intent = await ok(api.get(f"/api/payment-intents/{invoice['payment_intent_id']}"))
    assert intent["last_payment_error"]["code"] == "card_declined"
    assert intent["last_payment_error"]["message"] == "Your card was declined."
    for days in (1, 3):
        await advance(api, clock, T0 + (7 + days) * DAY)
        assert await timeline.types() == ["payment_intent.payment_failed"]
    await advance(api, clock, T0 + 12 * DAY)
    assert await timeline.types() == ["payment_intent.payment_failed", "customer.subscription.deleted"]
    assert (await ok(api.get(f"/api/invoices/{invoice['id']}")))["status"] == "uncollectible"
    attempts = await localstripe.payment_intents(intent["id"])
    assert len(attempts) == 4 and {p["status"] for p in attempts} == {"requires_payment_method"}


async def test_upgrade_charges_the_proration_off_session(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    low, high = await price(api, "10.00", interval="day", count=30), await price(api, "20.00", interval="day", count=30)
    clock, customer = await clock_customer(api)
    sub = await subscribe(api, customer, low)
    await advance(api, clock, T0 + 15 * DAY)
    await timeline.take()
    up = await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": high}]}))
    assert await timeline.types() == [
        "payment_intent.succeeded", "invoice.paid", "customer.subscription.upgraded", "customer.subscription.updated",
    ]  # fmt: skip
    invoice = await ok(api.get(f"/api/invoices/{up['latest_invoice_id']}"))
    assert invoice["total"] == "5.00"
    await _one_succeeded(localstripe, invoice["payment_intent_id"], 500)


async def test_refund_through_stripe(stripe_api: httpx.AsyncClient, localstripe: LocalStripe) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "25.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    done = await ok(api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": VISA}))
    await timeline.take()
    refund = await ok(api.post(f"/api/payment-intents/{done['payment_intent_id']}/refund", json={"amount": "12.50"}))
    assert refund["status"] == "succeeded" and refund["amount"] == "12.50"
    assert await timeline.types() == ["refund.succeeded"]
    charged = await _one_succeeded(localstripe, done["payment_intent_id"], 2500)
    assert [r["amount"] for r in await localstripe.refunds(charged["id"])] == [1250]
    intent = await ok(api.get(f"/api/payment-intents/{done['payment_intent_id']}"))
    assert intent["amount_refunded"] == "12.50"


class _Clock:
    """The engine's wall clock, moved by the test (a guest checkout has no test clock: that comes
    from its customer)."""

    def __init__(self) -> None:
        self.at = time.time()

    def now(self) -> float:
        return self.at


async def test_guest_subscription_checkout_saves_the_card_and_the_renewal_charges_it(
    database_url: str, localstripe: LocalStripe
) -> None:
    clock = _Clock()
    app = PaywireApp(database_url, settings=stripe_settings(database_url, localstripe), clock=clock, run_worker=False)
    uv, task, url = await start_server(app)
    try:
        server = Server(app, url, await new_key(app), await new_key(app, live=True))
        async with server.client() as api:
            timeline = Timeline(api)
            plan = await price(api, "10.00")
            session = await ok(
                api.post("/api/checkout-sessions", json={"mode": "subscription", "customer_email": "g@example.com",
                                                         "line_items": [{"price_id": plan}]})
            )  # fmt: skip
            async with localstripe.client() as stripe:  # what Stripe.js does in the browser
                card = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
                pm = (await stripe.post("/v1/payment_methods", json={"type": "card", "card": card})).json()["id"]
            done = await ok(api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": pm}))
            assert done["status"] == "complete" and done["customer_id"]
            ref = await _stripe_customer(server, done["customer_id"])
            first = await _one_succeeded(localstripe, done["payment_intent_id"], 1000)
            assert first["customer"] == ref
            async with localstripe.client() as stripe:
                assert (await stripe.get(f"/v1/payment_methods/{pm}")).json()["customer"] == ref
            await timeline.take()
            clock.at += 32 * DAY
            assert await run_due(app.db, app.billing) >= 1
            assert await timeline.types() == [
                "payment_intent.succeeded", "invoice.paid", "customer.subscription.renewed",
                "customer.subscription.updated",
            ]  # fmt: skip
            sub = await ok(api.get(f"/api/subscriptions/{done['subscription_id']}"))
            invoice = await ok(api.get(f"/api/invoices/{sub['latest_invoice_id']}"))
            assert invoice["billing_reason"] == "subscription_cycle" and invoice["status"] == "paid"
            renewal = await _one_succeeded(localstripe, invoice["payment_intent_id"], 1000)
            assert renewal["customer"] == ref and renewal["payment_method"] == pm
    finally:
        await stop_server(uv, task)


async def test_a_charge_asked_again_after_stripe_forgot_its_key_is_not_charged_twice(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processing for more than 24 hours: Stripe has forgotten the idempotency key, so only the
    PaymentIntent's id stored before it was confirmed keeps the reconciler from charging again."""
    api = stripe_api
    provider = stripe_server.app.billing.provider
    real = provider.charge

    async def lost(**kwargs: Any) -> ChargeResult:
        await real(**kwargs)  # Stripe charges …
        raise ProviderUnavailable("connection reset")  # … and the answer never arrives

    monkeypatch.setattr(provider, "charge", lost)
    timeline = Timeline(api)
    item = await price(api, "44.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]}))
    await timeline.take()
    answer = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": VISA})
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "payment_processing", answer.text
    [pending] = (await ok(api.get("/api/payment-intents", params={"status": "processing"})))["list"]
    assert [p["status"] for p in await localstripe.payment_intents(pending["id"])] == ["succeeded"]
    async with localstripe.client() as stripe:
        assert (await stripe.delete("/_config/idempotency")).status_code == 200  # 24 hours later
    monkeypatch.undo()
    stripe_server.app.billing.charge_grace = 0.0
    assert await reconcile.run(stripe_server.app.db, stripe_server.app.billing) == 1
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    assert (await ok(api.get(f"/api/checkout-sessions/{session['id']}")))["status"] == "complete"
    assert [p["status"] for p in await localstripe.payment_intents(pending["id"])] == ["succeeded"]

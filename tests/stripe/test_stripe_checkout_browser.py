"""The hosted checkout page with Stripe as the provider, in Chromium: Stripe Elements (the launcher's
Stripe.js test double, tests/stripe/stripe_js_double.js) makes the PaymentMethod in the browser,
Paywire confirms it through localstripe. One-time payment, a subscription without a customer, a
declining card, a 3-D Secure card. The events are the contract's, in its order."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Page, Request, expect

from tests.conftest import Server
from tests.integration.test_billing_timelines import Timeline, ok, price
from tests.stripe.conftest import LocalStripe
from tests.web.conftest import screenshot


def _guard_card_numbers(page: Page, server: Server) -> list[str]:
    """Every body the browser posts to Paywire (none may carry a card number)."""
    bodies: list[str] = []

    def seen(request: Request) -> None:
        if request.url.startswith(server.url) and request.method == "POST":
            bodies.append(request.post_data or "")

    page.on("request", seen)
    return bodies


async def _fill_card(page: Page, number: str, expiry: str = "12 / 34", cvc: str = "123") -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiration date MM / YY").fill(expiry)
    await page.get_by_label("CVC").fill(cvc)


async def _session(api: httpx.AsyncClient, price_id: str, **fields: Any) -> dict[str, Any]:
    body = {"mode": "payment", "line_items": [{"price_id": price_id}], **fields}
    return await ok(api.post("/api/checkout-sessions", json=body))


async def _succeeded_in_stripe(localstripe: LocalStripe, intent_id: str, amount: int) -> dict[str, Any]:
    found = await localstripe.payment_intents(intent_id)
    assert [p["status"] for p in found] == ["succeeded"], found
    assert found[0]["amount"] == amount
    return found[0]


async def test_one_time_payment_through_elements(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe, page: Page
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "19.99", interval=None)
    cs = await _session(api, item)
    await timeline.take()
    posted = _guard_card_numbers(page, stripe_server)
    response = await page.goto(cs["url"])
    assert response is not None
    csp = response.headers["content-security-policy"]
    origin = localstripe.url
    for directive in ("script-src", "frame-src", "connect-src"):
        assert f"{directive} 'self' {origin};" in csp, csp
    await expect(page.get_by_label("Card number")).to_be_visible()
    await page.get_by_label("Email").fill("elements@example.com")
    await _fill_card(page, "4242 4242 4242 4242")
    await screenshot(page, "stripe-elements-checkout")
    await page.get_by_role("button", name="Pay").click()
    await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    await screenshot(page, "stripe-elements-complete")

    done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
    assert done["status"] == "complete" and done["payment_status"] == "paid"
    assert done["payment_method"].startswith("pm_") and done["customer_email"] == "elements@example.com"
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    await _succeeded_in_stripe(localstripe, done["payment_intent_id"], 1999)
    assert posted and all("4242" not in body for body in posted), posted
    assert any("payment_method=pm_" in body for body in posted)


async def test_subscription_through_elements_saves_the_card_to_a_stripe_customer(
    stripe_server: Server, stripe_api: httpx.AsyncClient, localstripe: LocalStripe, page: Page
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    plan = await price(api, "9.00")
    cs = await _session(api, plan, mode="subscription")  # no customer_id: made on payment
    await timeline.take()
    await page.goto(cs["url"])
    await page.get_by_label("Email").fill("subscriber@example.com")
    await _fill_card(page, "4242 4242 4242 4242")
    await page.get_by_role("button", name="Pay").click()
    await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()

    done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
    assert done["status"] == "complete" and done["subscription_id"]
    assert await timeline.types() == [
        "customer.subscription.created", "payment_intent.succeeded", "invoice.paid",
        "customer.subscription.started", "checkout.session.completed",
    ]  # fmt: skip
    charged = await _succeeded_in_stripe(localstripe, done["payment_intent_id"], 900)
    assert charged["customer"] and charged["customer"].startswith("cus_")
    async with localstripe.client() as stripe:
        pm = (await stripe.get(f"/v1/payment_methods/{done['payment_method']}")).json()
    assert pm["customer"] == charged["customer"]  # saved for renewals


async def test_a_declining_card_shows_inline_and_another_card_pays(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe, page: Page
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "5.00", interval=None)
    cs = await _session(api, item, customer_email="decline@example.com")
    await timeline.take()
    await page.goto(cs["url"])
    await _fill_card(page, "4000 0000 0000 0341")  # declined when charged, by Stripe and localstripe
    await page.get_by_role("button", name="Pay").click()
    await expect(page.locator("#form-error")).to_have_text("Your card was declined.")
    await screenshot(page, "stripe-elements-declined")
    assert await timeline.types() == ["payment_intent.payment_failed"]
    assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"
    await _fill_card(page, "4242 4242 4242 4242")
    await page.get_by_role("button", name="Pay").click()
    await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    attempts = await localstripe.payment_intents(done["payment_intent_id"])
    assert sorted(p["status"] for p in attempts) == ["requires_payment_method", "succeeded"]


async def test_an_invalid_card_number_never_leaves_the_page(
    stripe_server: Server, stripe_api: httpx.AsyncClient, page: Page
) -> None:
    item = await price(stripe_api, "5.00", interval=None)
    cs = await _session(stripe_api, item, customer_email="typo@example.com")
    posted = _guard_card_numbers(page, stripe_server)
    await page.goto(cs["url"])
    await _fill_card(page, "4242 4242 4242 4241")
    await page.get_by_role("button", name="Pay").click()
    await expect(page.locator("#card-error")).to_have_text("Your card number is invalid.")
    assert posted == []


async def test_3d_secure_card_authenticates_on_the_page(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe, page: Page
) -> None:
    api = stripe_api
    timeline = Timeline(api)
    item = await price(api, "30.00", interval=None)
    cs = await _session(api, item, customer_email="3ds@example.com")
    await timeline.take()
    await page.goto(cs["url"])
    await _fill_card(page, "4000 0025 0000 3155")
    await page.get_by_role("button", name="Pay").click()
    dialog = page.get_by_role("dialog", name="3D Secure test authentication")
    await expect(dialog).to_be_visible()
    await screenshot(page, "stripe-elements-3ds")
    await dialog.get_by_role("button", name="Complete authentication").click()
    await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
    done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
    assert done["status"] == "complete"
    # requires_action is reported as payment_failed (no requires_action event type), then it pays
    assert await timeline.types() == [
        "payment_intent.payment_failed", "payment_intent.succeeded", "checkout.session.completed",
    ]  # fmt: skip
    await _succeeded_in_stripe(localstripe, done["payment_intent_id"], 3000)


async def test_3d_secure_failed_shows_inline_and_nothing_is_charged(
    stripe_api: httpx.AsyncClient, localstripe: LocalStripe, page: Page
) -> None:
    api = stripe_api
    item = await price(api, "31.00", interval=None)
    cs = await _session(api, item, customer_email="3ds-fail@example.com")
    await page.goto(cs["url"])
    await _fill_card(page, "4000 0025 0000 3155")
    await page.get_by_role("button", name="Pay").click()
    dialog = page.get_by_role("dialog", name="3D Secure test authentication")
    await dialog.get_by_role("button", name="Fail authentication").click()
    await expect(page.locator("#card-error")).to_contain_text("unable to authenticate")
    await expect(page.get_by_role("button", name="Pay")).to_be_enabled()
    after = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
    assert after["status"] == "open"
    found = await localstripe.payment_intents(after["payment_intent_id"])
    assert [p["status"] for p in found] == ["requires_payment_method"]

"""Hosted checkout in a real browser: paying, declines, success and cancel URLs."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.payer_helpers import events, fill_card, ok, price, session


async def test_buy_a_one_time_product_and_land_on_success_url(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "19.99", name="Desk lamp")
        cs = await session(
            api, p["id"], quantity=2, success_url="https://shop.example/thanks?session={CHECKOUT_SESSION_ID}",
            cancel_url="https://shop.example/cart",
        )  # fmt: skip
        assert cs["url"] == f"{server.url}/pay/checkout/{cs['id']}"
        await page.route("https://shop.example/**", lambda route: route.fulfill(body="<h1>Thanks</h1>"))
        await page.goto(cs["url"])
        await expect(page.get_by_text("Desk lamp")).to_be_visible()
        await expect(page.locator(".summary-total")).to_have_text("$39.98")
        await expect(page.get_by_text("Qty 2 \u00d7 $19.99")).to_be_visible()
        await expect(page.get_by_label("Email")).to_be_visible()
        await expect(page.get_by_role("link", name=re.compile("Cancel"))).to_have_attribute(
            "href", "https://shop.example/cart"
        )
        await screenshot(page, "pay-checkout-desktop")
        await page.get_by_label("Email").fill("buyer@example.com")
        await fill_card(page)
        await page.get_by_role("button", name="Pay").click()
        await page.wait_for_url(f"https://shop.example/thanks?session={cs['id']}")

        done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
        assert done["status"] == "complete" and done["payment_status"] == "paid"
        assert done["customer_email"] == "buyer@example.com"
        types = [e["type"] for e in await events(api) if e["type"].startswith(("payment_intent.", "checkout."))]
        assert types == [
            "checkout.session.created", "payment_intent.created", "payment_intent.succeeded",
            "checkout.session.completed",
        ]  # fmt: skip
        # the page now says it is complete, never a form
        await page.goto(cs["url"])
        await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        await expect(page.get_by_text("Paid with Visa ending in 4242")).to_be_visible()
        await expect(page.get_by_label("Card number")).to_have_count(0)
        await screenshot(page, "pay-checkout-complete")


async def test_a_declined_card_shows_why_and_the_session_stays_open(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "5.00", name="Sticker")
        cs = await session(api, p["id"], customer_email="a@example.com")
        await page.goto(cs["url"])
        await expect(page.get_by_label("Email")).to_have_count(0)  # the session has an email
        await fill_card(page, "4000 0000 0000 0002")
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("alert")).to_contain_text("declined")
        await screenshot(page, "pay-checkout-declined")
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"
        await fill_card(page)
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        intents = (await ok(api.get("/api/payment-intents", params={"status": "succeeded"})))["list"]
        assert len(intents) == 1 and intents[0]["checkout_session_id"] == cs["id"]
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "complete"


async def test_a_phone_sized_checkout_fits_375px(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "19.99", name="Pro plan", interval="month", trial_days=7)
        cs = await session(api, p["id"], mode="subscription")
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.goto(cs["url"])
    await expect(page.get_by_text("7 days free, then $19.99 / month")).to_be_visible()
    await expect(page.get_by_role("button", name="Start trial")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    await screenshot(page, "pay-checkout-trial-375")
    await page.get_by_label("Email").fill("trial@example.com")
    await fill_card(page)
    await page.get_by_role("button", name="Start trial").click()
    await expect(page.get_by_role("heading", name="Your trial has started")).to_be_visible()
    await screenshot(page, "pay-checkout-trial-started-375")


async def test_an_nft_checkout_paid_on_the_page_is_minted_at_once(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "3.00", name="Ticket")
        cs = await session(api, p["id"], customer_email="nft@example.com", nft_mint_settings={"enabled": True})
        await page.goto(cs["url"])
        await fill_card(page)
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        done = await ok(api.get(f"/api/checkout-sessions/{cs['id']}"))
        assert done["nft_mint_status"] == "minted"  # as after the API's confirm
        types = [e["type"] for e in await events(api, "checkout.session.*")]
        assert types == ["checkout.session.created", "checkout.session.completed", "checkout.session.nft_minted"]


async def test_a_subscription_without_trial_is_paid_at_once(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "12.50", name="Magazine", interval="month")
        customer = await ok(api.post("/api/customers", json={"email": "reader@example.com"}))
        cs = await session(api, p["id"], mode="subscription", customer_id=customer["id"])
        await page.goto(cs["url"])
        await expect(page.get_by_label("Email")).to_have_count(0)  # the customer is known
        await expect(page.locator(".summary-total")).to_have_text("$12.50 / month")
        await screenshot(page, "pay-checkout-subscription")
        await fill_card(page)
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        sub = (await ok(api.get("/api/subscriptions", params={"customer_id": customer["id"]})))["list"][0]
        assert sub["status"] == "active"
        types = [e["type"] for e in await events(api)]
        assert types.index("payment_intent.succeeded") < types.index("checkout.session.completed")

"""A payment link in a real browser: a visit starts a checkout; a deactivated link sells nothing."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.payer_helpers import fill_card, ok, price


async def test_a_payment_link_sells_a_trial_subscription_and_then_stops(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "19.99", name="Team plan", interval="month")
        link = await ok(
            api.post(
                "/api/payment-links",
                json={"line_items": [{"price_id": p["id"]}], "subscription_data": {"trial_period_days": 14}},
            )
        )
        await page.goto(link["url"])
        assert "/pay/checkout/cs_" in page.url
        await expect(page.get_by_text("14 days free, then $19.99 / month")).to_be_visible()
        await screenshot(page, "pay-link-checkout")
        await page.get_by_label("Email").fill("team@example.com")
        await fill_card(page)
        await page.get_by_role("button", name="Start trial").click()
        await expect(page.get_by_role("heading", name="Your trial has started")).to_be_visible()
        subs = (await ok(api.get("/api/subscriptions")))["list"]
        assert len(subs) == 1 and subs[0]["status"] == "trialing"
        session_id = page.url.rsplit("/", 1)[1]
        assert (await ok(api.get(f"/api/checkout-sessions/{session_id}")))["payment_link_id"] == link["id"]

        await ok(api.put(f"/api/payment-links/{link['id']}", json={"active": False}))
        answer = await page.goto(link["url"])
        assert answer is not None and answer.status == 410
        await expect(page.get_by_role("heading", name="This link is no longer available")).to_be_visible()
        await screenshot(page, "pay-link-inactive")

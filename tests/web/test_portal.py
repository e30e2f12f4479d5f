"""The customer portal in a real browser: a trial bought through a payment link, then cancel at
period end and undo, pause and resume, a plan change whose invoice equals its preview, invoices."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.payer_helpers import fill_card, ok, price, session


async def _portal_url(api: httpx.AsyncClient, customer_id: str, **fields: Any) -> str:
    body = await ok(api.post("/api/billing-portal/sessions", json={"customer_id": customer_id, **fields}))
    return str(body["url"])


async def test_trial_from_a_payment_link_managed_in_the_portal(server: Server, page: Page) -> None:
    async with server.client() as api:
        basic = await price(api, "19.99", name="Pro", interval="month")
        await price(api, "49.99", interval="month", product_id=basic["product_id"])
        link = await ok(
            api.post(
                "/api/payment-links",
                json={"line_items": [{"price_id": basic["id"]}], "subscription_data": {"trial_period_days": 7}},
            )
        )
        await page.goto(link["url"])
        await page.get_by_label("Email").fill("portal@example.com")
        await fill_card(page)
        await page.get_by_role("button", name="Start trial").click()
        await expect(page.get_by_role("heading", name="Your trial has started")).to_be_visible()
        sub = (await ok(api.get("/api/subscriptions")))["list"][0]

        await page.goto(await _portal_url(api, sub["customer_id"], return_url="https://shop.example/account"))
        await expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
        card = page.locator(f"#{sub['id']}")
        await expect(card.get_by_text("Pro", exact=True)).to_be_visible()
        await expect(card.get_by_text("$19.99 / month")).to_be_visible()
        await expect(card.get_by_text("Trial ends")).to_be_visible()
        await expect(card.get_by_text(re.compile(r"\$19\.99 on "))).to_be_visible()
        await screenshot(page, "pay-portal-desktop")

        await card.get_by_role("button", name="Cancel at period end").click()
        await expect(page.get_by_role("status")).to_contain_text("will end at the end of the current period")
        await expect(card.get_by_text("Ends on")).to_be_visible()
        assert (await ok(api.get(f"/api/subscriptions/{sub['id']}")))["cancel_at_period_end"] is True
        await screenshot(page, "pay-portal-canceling")
        await card.get_by_role("button", name="Don't cancel").click()
        await expect(page.get_by_role("status")).to_contain_text("will continue")
        assert (await ok(api.get(f"/api/subscriptions/{sub['id']}")))["cancel_at_period_end"] is False

        await card.get_by_role("button", name="Pause").click()
        assert (await ok(api.get(f"/api/subscriptions/{sub['id']}")))["status"] == "paused"
        await expect(card.get_by_role("button", name="Resume")).to_be_visible()
        await screenshot(page, "pay-portal-paused")
        await card.get_by_role("button", name="Resume").click()
        await expect(page.get_by_role("status")).to_contain_text("resumed")
        resumed = await ok(api.get(f"/api/subscriptions/{sub['id']}"))
        assert resumed["status"] == "active"  # resuming ends the paused trial and charges a period

        # Change plan: the preview is what the engine then charges, to the cent.
        await card.get_by_role("link", name="Change plan").click()
        await page.get_by_label(re.compile(r"\$49\.99")).check()
        await page.get_by_role("button", name="Preview the change").click()
        due = (await page.locator("#due-now").inner_text()).strip()
        await screenshot(page, "pay-portal-change-preview")
        await page.get_by_role("button", name="Confirm change").click()
        await expect(page.get_by_role("status")).to_contain_text("Your plan has changed")
        upgraded = await ok(api.get(f"/api/subscriptions/{sub['id']}"))
        invoice = await ok(api.get(f"/api/invoices/{upgraded['latest_invoice_id']}"))
        assert invoice["billing_reason"] == "subscription_update" and invoice["status"] == "paid"
        assert f"${invoice['total']}" == due
        # The invoice list and a printable invoice page.
        await expect(page.get_by_role("link", name=invoice["id"])).to_be_visible()
        await screenshot(page, "pay-portal-after-change")
        await page.get_by_role("link", name=invoice["id"]).click()
        await expect(page.get_by_role("heading", name="Invoice", exact=True)).to_be_visible()
        await expect(page.locator("#invoice-total")).to_have_text(f"${invoice['total']}")
        await expect(page.get_by_role("button", name="Print")).to_be_visible()
        await screenshot(page, "pay-portal-invoice")
        await page.emulate_media(media="print")
        await expect(page.get_by_role("button", name="Print")).to_be_hidden()
        await screenshot(page, "pay-portal-invoice-print")


async def test_an_active_subscription_upgrade_on_a_test_clock_matches_its_preview(
    server: Server, browser: Browser
) -> None:
    async with server.client() as api:
        now = int(time.time())
        clock = await ok(api.post("/api/test-clocks", json={"frozen_time": now}))
        customer = await ok(api.post("/api/customers", json={"email": "c@example.com", "name": "Ada Lovelace",
                                                             "test_clock_id": clock["id"]}))  # fmt: skip
        low = await price(api, "10.00", name="Storage", interval="month")
        high = await price(api, "25.00", interval="month", product_id=low["product_id"])
        cs = await session(api, low["id"], mode="subscription", customer_id=customer["id"])
        await ok(api.post(f"/api/checkout-sessions/{cs['id']}/confirm", json={"payment_method": "pm_card_visa"}))
        await ok(api.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": now + 11 * 86400 + 77}))
        context = await browser.new_context(viewport={"width": 375, "height": 800})
        page = await context.new_page()
        try:
            await page.goto(await _portal_url(api, customer["id"]))
            await expect(page.get_by_text("Ada Lovelace")).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375
            await screenshot(page, "pay-portal-375")
            sub = (await ok(api.get("/api/subscriptions")))["list"][0]
            await page.goto(f"{server.url}/pay/portal/subscriptions/{sub['id']}/change?price_id={high['id']}")
            due = (await page.locator("#due-now").inner_text()).strip()
            await expect(page.get_by_text("Unused time on Storage ($10.00 / month)")).to_be_visible()
            await screenshot(page, "pay-portal-change-375")
            await page.get_by_role("button", name="Confirm change").click()
            await expect(page.get_by_role("status")).to_contain_text("Your plan has changed")
            invoices = (await ok(api.get("/api/invoices", params={"subscription_id": sub["id"]})))["list"]
            update = [i for i in invoices if i["billing_reason"] == "subscription_update"]
            assert len(update) == 1 and f"${update[0]['total']}" == due and update[0]["total"] != "0.00"
            await page.goto(f"{server.url}/pay/portal/invoices/{update[0]['id']}")
            await expect(page.locator("#invoice-total")).to_have_text(due)
            await screenshot(page, "pay-portal-invoice-375")
        finally:
            await context.close()


async def test_portal_links_work_once_and_show_only_their_customer(server: Server, browser: Browser) -> None:
    async with server.client() as api:
        p = await price(api, "9.00", interval="month")
        ids = {}
        for name in ("alice", "bob"):
            customer = await ok(api.post("/api/customers", json={"email": f"{name}@example.com"}))
            sub = await ok(api.post("/api/subscriptions", json={"customer_id": customer["id"],
                                                               "items": [{"price_id": p["id"]}],
                                                               "default_payment_method": "pm_card_visa"}))  # fmt: skip
            ids[name] = (customer["id"], sub["id"], sub["latest_invoice_id"])
        url = await _portal_url(api, ids["alice"][0], customer=ids["alice"][0])
        context = await browser.new_context()
        page = await context.new_page()
        try:
            await page.goto(url)
            await expect(page.get_by_text("alice@example.com")).to_be_visible()
            await expect(page.get_by_role("link", name=ids["alice"][2])).to_be_visible()
            await expect(page.get_by_text("bob@example.com")).to_have_count(0)
            base = f"{server.url}/pay/portal"
            for path in (f"/invoices/{ids['bob'][2]}", f"/subscriptions/{ids['bob'][1]}/change"):
                answer = await page.goto(base + path)
                assert answer is not None and answer.status == 404, path
            await screenshot(page, "pay-portal-not-found")
            # Bob's subscription cannot be canceled from Alice's portal either.
            await page.goto(base)
            token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
            cancel_bob = f"{base}/subscriptions/{ids['bob'][1]}/cancel"
            refused = await page.request.post(cancel_bob, form={"csrf_token": token or ""})
            assert refused.status == 404
            assert (await ok(api.get(f"/api/subscriptions/{ids['bob'][1]}")))["cancel_at_period_end"] is False
        finally:
            await context.close()
        # The same URL again (another browser): refused.
        context = await browser.new_context()
        page = await context.new_page()
        try:
            answer = await page.goto(url)
            assert answer is not None and answer.status == 410
            await expect(page.get_by_role("heading", name="This link has already been used")).to_be_visible()
            await screenshot(page, "pay-portal-link-used")
            answer = await page.goto(f"{server.url}/pay/portal")
            assert answer is not None and answer.status == 401
            await screenshot(page, "pay-portal-no-session")
        finally:
            await context.close()


async def test_the_portal_in_chinese(server: Server, browser: Browser) -> None:
    async with server.client() as api:
        p = await price(api, "88.00", name="Tea club", currency="cny", interval="month")
        customer = await ok(api.post("/api/customers", json={"email": "cha@example.com", "name": "李雷"}))
        await ok(api.post("/api/subscriptions", json={"customer_id": customer["id"], "items": [{"price_id": p["id"]}],
                                                     "default_payment_method": "pm_card_visa"}))  # fmt: skip
        intent = (await ok(api.get("/api/payment-intents", params={"customer_id": customer["id"]})))["list"][0]
        await ok(api.post(f"/api/payment-intents/{intent['id']}/refund", json={"amount": "8.00"}))
        url = await _portal_url(api, customer["id"], locale="zh")
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    try:
        await page.goto(url)
        await expect(page.get_by_role("heading", name="账单", exact=True)).to_be_visible()
        await expect(page.get_by_text("¥88.00 / 月").first).to_be_visible()
        await expect(page.get_by_role("button", name="在本期结束时取消")).to_be_visible()
        await expect(page.get_by_role("heading", name="退款记录")).to_be_visible()
        await expect(page.get_by_text("已退款 ¥8.00")).to_be_visible()
        await screenshot(page, "pay-portal-zh")
    finally:
        await context.close()

"""One checkout paid in Chinese and one in English: strings from the catalogue, amounts and
currency formatted for the locale."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.payer_helpers import ok, price, session


async def test_pay_in_chinese_and_in_english(server: Server, browser: Browser) -> None:
    async with server.client() as api:
        p = await price(api, "1234.50", name="Tea set")
        zh_session = await session(api, p["id"], locale="zh")
        auto_session = await session(api, p["id"], locale="auto")
        context = await browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        try:
            await page.goto(zh_session["url"])
            assert await page.get_attribute("html", "lang") == "zh-CN"
            await expect(page.locator(".summary-total")).to_have_text("US$1,234.50")
            await expect(page.get_by_text("测试模式").first).to_be_visible()
            await page.get_by_label("电子邮箱").fill("zh@example.com")
            await page.get_by_label("卡号").fill("4242 4242 4242 4242")
            await page.get_by_label("有效期").fill("12 / 34")
            await page.get_by_label("安全码 (CVC)").fill("123")
            await screenshot(page, "pay-checkout-zh")
            await page.get_by_role("button", name="支付").click()
            await expect(page.get_by_role("heading", name="支付成功")).to_be_visible()
            await expect(page.get_by_text("US$1,234.50")).to_be_visible()
            await screenshot(page, "pay-checkout-zh-complete")
            done = await ok(api.get(f"/api/checkout-sessions/{zh_session['id']}"))
            assert done["status"] == "complete" and done["locale"] == "zh"
        finally:
            await context.close()

        # `auto`: the browser's language decides; an English browser pays in English.
        context = await browser.new_context(locale="en-US")
        page = await context.new_page()
        try:
            await page.goto(auto_session["url"])
            assert await page.get_attribute("html", "lang") == "en"
            await expect(page.locator(".summary-total")).to_have_text("$1,234.50")
            await page.get_by_label("Email").fill("en@example.com")
            await page.get_by_label("Card number").fill("4242 4242 4242 4242")
            await page.get_by_label("Expiry").fill("12 / 34")
            await page.get_by_label("CVC").fill("123")
            await page.get_by_role("button", name="Pay").click()
            await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        finally:
            await context.close()
        # …and a Chinese browser gets the same `auto` session's pages in Chinese.
        other = await session(api, p["id"])
        context = await browser.new_context(locale="zh-CN")
        page = await context.new_page()
        try:
            await page.goto(other["url"])
            await expect(page.get_by_role("button", name="支付")).to_be_visible()
        finally:
            await context.close()

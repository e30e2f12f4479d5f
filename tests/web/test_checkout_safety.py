"""Hosted checkout can never charge twice, refuses what it must, and checks cards on the server."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
from playwright.async_api import Browser, Page, expect

from paywire.db.schema import payment_intents
from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.payer_helpers import fill_card, ok, price, session

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _succeeded(api: httpx.AsyncClient) -> list[dict[str, object]]:
    return list((await ok(api.get("/api/payment-intents", params={"status": "succeeded"})))["list"])


async def test_a_double_clicked_pay_button_pays_once(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "12.00")
        cs = await session(api, p["id"], customer_email="d@example.com")
        await page.goto(cs["url"])
        await fill_card(page)
        await page.get_by_role("button", name="Pay").dblclick()
        await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
        # Submitting the form twice more from script (what a JS-less double click does).
        await page.goto(cs["url"])
        assert len(await _succeeded(api)) == 1


async def test_without_javascript_two_submits_pay_once(server: Server, browser: Browser) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        async with server.client() as api:
            p = await price(api, "12.00")
            success = f"{server.url}/healthz?session={{CHECKOUT_SESSION_ID}}"
            cs = await session(api, p["id"], customer_email="d@example.com", success_url=success)
            await page.goto(cs["url"])
            await fill_card(page)
            # Two submissions of the same form, as fast as the browser sends them.
            await page.evaluate("() => { const f = document.forms[0]; f.requestSubmit(); f.requestSubmit(); }")
            await page.wait_for_url(f"{server.url}/healthz?session={cs['id']}")
            assert len(await _succeeded(api)) == 1
    finally:
        await context.close()


async def test_concurrent_posts_and_two_tabs_pay_once(server: Server, browser: Browser) -> None:
    async with server.client() as api:
        p = await price(api, "30.00")
        cs = await session(api, p["id"], customer_email="c@example.com")
        async with httpx.AsyncClient(timeout=20) as payer:
            html = (await payer.get(cs["url"])).text
            token = CSRF.search(html)
            assert token is not None
            form = {"csrf_token": token.group(1), "card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"}
            answers = await asyncio.gather(*(payer.post(cs["url"], data=form) for _ in range(5)))
        assert all(a.status_code == 303 for a in answers), [a.status_code for a in answers]
        assert {a.headers["location"] for a in answers} == {f"/pay/checkout/{cs['id']}"}
        assert len(await _succeeded(api)) == 1

        # Two tabs of one browser, both showing the form, both paying.
        cs2 = await session(api, p["id"], customer_email="t@example.com")
        context = await browser.new_context()
        try:
            tabs = [await context.new_page(), await context.new_page()]
            for tab in tabs:
                await tab.goto(cs2["url"])
                await fill_card(tab)
            await tabs[0].get_by_role("button", name="Pay").click()
            await expect(tabs[0].get_by_role("heading", name="Payment complete")).to_be_visible()
            await tabs[1].get_by_role("button", name="Pay").click()
            await expect(tabs[1].get_by_role("heading", name="Payment complete")).to_be_visible()
        finally:
            await context.close()
        paid = [i for i in await _succeeded(api) if i["checkout_session_id"] == cs2["id"]]
        assert len(paid) == 1


async def test_server_checks_cards_with_javascript_off(server: Server, browser: Browser) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        async with server.client() as api:
            p = await price(api, "8.00")
            cs = await session(api, p["id"])
            await page.goto(cs["url"])
            await page.get_by_label("Email").fill("not-an-email")
            await fill_card(page, "4242 4242 4242 4241", "01 / 20", "12")
            await page.get_by_role("button", name="Pay").click()
            await expect(page.locator("#card_number-error")).to_have_text("Your card number is invalid.")
            await expect(page.locator("#expiry-error")).to_have_text("Your card's expiry date is in the past.")
            await expect(page.locator("#cvc-error")).to_have_text(re.compile("3 or 4 digits"))
            await expect(page.locator("#email-error")).to_have_text("Enter a valid email address.")
            await expect(page.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
            await expect(page.get_by_label("Card number")).to_have_value("")  # never echoed back
            await screenshot(page, "pay-checkout-errors-nojs")
            await page.get_by_label("Email").fill("ok@example.com")
            await fill_card(page, "5555 5555 5555 4444")  # a valid number, but not a test card
            await page.get_by_role("button", name="Pay").click()
            await expect(page.locator("#card_number-error")).to_contain_text("not a test card")
            await fill_card(page)
            await page.get_by_role("button", name="Pay").click()
            await expect(page.get_by_role("heading", name="Payment complete")).to_be_visible()
            assert len(await _succeeded(api)) == 1
    finally:
        await context.close()


async def test_browser_checks_cards_before_sending(server: Server, page: Page) -> None:
    async with server.client() as api:
        p = await price(api, "8.00")
        cs = await session(api, p["id"], customer_email="js@example.com")
    await page.goto(cs["url"])
    await page.get_by_label("Card number").press_sequentially("4242424242424241")
    await expect(page.get_by_label("Card number")).to_have_value("4242 4242 4242 4241")
    await page.get_by_label("Expiry").press_sequentially("1220")
    await expect(page.get_by_label("Expiry")).to_have_value("12 / 20")
    await page.get_by_label("CVC").fill("1")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    await page.get_by_role("button", name="Pay").click()
    await expect(page.locator("#card_number-error")).to_have_text("Your card number is invalid.")
    await expect(page.locator("#expiry-error")).to_have_text("Your card's expiry date is in the past.")
    await expect(page.locator("#cvc-error")).not_to_be_empty()
    assert posted == []
    await screenshot(page, "pay-checkout-errors-js")


async def test_expired_and_live_sessions_show_no_form(server: Server, page: Page) -> None:
    async with server.client() as api:
        now = int(time.time())
        clock = await ok(api.post("/api/test-clocks", json={"frozen_time": now}))
        customer = await ok(api.post("/api/customers", json={"email": "e@example.com", "test_clock_id": clock["id"]}))
        p = await price(api, "8.00")
        cs = await session(api, p["id"], customer_id=customer["id"], cancel_url="https://shop.example/")
        await ok(api.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": now + 25 * 3600}))
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "expired"
        answer = await page.goto(cs["url"])
        assert answer is not None and answer.status == 410
        await expect(page.get_by_role("heading", name="This checkout has expired")).to_be_visible()
        await expect(page.get_by_label("Card number")).to_have_count(0)
        await screenshot(page, "pay-checkout-expired")
    async with server.client(server.live_key) as live:
        p = await price(live, "8.00")
        cs = await session(live, p["id"], customer_email="l@example.com")
        await page.goto(cs["url"])
        await expect(page.get_by_text("Payments are unavailable")).to_be_visible()
        await expect(page.get_by_label("Card number")).to_have_count(0)
        await expect(page.locator(".mode-test")).to_have_count(0)
        await screenshot(page, "pay-checkout-live-unavailable")
        # A hand-made POST with a test card is refused too.
        async with httpx.AsyncClient() as payer:
            token = CSRF.search((await payer.get(cs["url"])).text)
            assert token is None  # no form, no token in the page
            cookie = (await payer.get(f"{server.url}/pay/checkout/nope")).status_code
            assert cookie == 404
            jar_token = payer.cookies.get("paywire_csrf")
            form = {"csrf_token": jar_token or "", "card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"}
            answer2 = await payer.post(cs["url"], data=form)
            assert answer2.status_code == 400
        assert (await ok(live.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"
        unknown = await page.goto(f"{server.url}/pay/checkout/cs_doesnotexist")
        assert unknown is not None and unknown.status == 404
        await screenshot(page, "pay-not-found")


async def test_a_processing_payment_shows_no_form(server: Server, page: Page) -> None:
    """A provider that answers later leaves the intent `processing`: the page waits, never pays again."""
    async with server.client() as api:
        p = await price(api, "7.00")
        cs = await session(api, p["id"], customer_email="w@example.com")
        await page.goto(cs["url"])
        await fill_card(page, "4000 0000 0000 0002")
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("alert")).to_contain_text("declined")
        intent_id = (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["payment_intent_id"]
        async with server.app.db.transaction() as tx:
            await tx.conn.execute(
                payment_intents.update().where(payment_intents.c.id == intent_id).values(status="processing")
            )
        await page.goto(cs["url"])
        await expect(page.get_by_role("heading", name="Your payment is processing")).to_be_visible()
        await expect(page.get_by_label("Card number")).to_have_count(0)
        assert await page.locator('meta[http-equiv="refresh"]').count() == 1
        await screenshot(page, "pay-checkout-processing")

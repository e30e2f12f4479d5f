"""Every payer page: CSP without inline scripts or styles, never framed, no inline handlers,
every input labelled; the CLI's public URL reaches checkout URLs."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import sqlalchemy as sa
from playwright.async_api import Page, expect

from paywire.db.schema import billing_portal_sessions
from tests.conftest import Server, free_port
from tests.web.conftest import screenshot
from tests.web.payer_helpers import fill_card, ok, price, session

INLINE = re.compile(r"\sstyle=|\son[a-z]+=|<script>|<script(?![^>]*\bsrc=)[^>]*>|<style", re.IGNORECASE)


def _check(answer: httpx.Response) -> None:
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp and "script-src 'self'" in csp
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
    assert INLINE.search(answer.text) is None, INLINE.search(answer.text)
    for field in re.findall(r'<input[^>]*type="(?:text|email)"[^>]*id="([^"]+)"', answer.text):
        assert f'<label for="{field}"' in answer.text, field


async def test_every_payer_page_has_a_strict_csp_and_labelled_inputs(server: Server) -> None:
    async with server.client() as api, httpx.AsyncClient() as payer:
        one_time = await price(api, "4.00")
        monthly = await price(api, "9.00", interval="month")
        await price(api, "19.00", interval="month", product_id=monthly["product_id"])
        cs = await session(api, one_time["id"])
        link = await ok(api.post("/api/payment-links", json={"line_items": [{"price_id": one_time["id"]}]}))
        customer = await ok(api.post("/api/customers", json={"email": "s@example.com"}))
        sub = await ok(api.post("/api/subscriptions", json={"customer_id": customer["id"],
                                                           "items": [{"price_id": monthly["id"]}],
                                                           "default_payment_method": "pm_card_visa"}))  # fmt: skip
        portal = await ok(api.post("/api/billing-portal/sessions", json={"customer_id": customer["id"]}))
        _check(await payer.get(cs["url"]))
        _check(await payer.get(f"{server.url}/pay/checkout/cs_missing"))
        assert (await payer.get(link["url"], follow_redirects=True)).status_code == 200
        assert (await payer.get(portal["url"])).status_code == 303  # the portal cookie, in payer's jar
        async with httpx.AsyncClient() as other:
            assert (await other.get(portal["url"])).status_code == 410  # used already
        for path in ("/pay/portal", f"/pay/portal/subscriptions/{sub['id']}/change",
                     f"/pay/portal/subscriptions/{sub['id']}/change?price_id=x",
                     f"/pay/portal/invoices/{sub['latest_invoice_id']}"):  # fmt: skip
            answer = await payer.get(f"{server.url}{path}")
            assert answer.status_code == 200, path
            _check(answer)
        # A form without its CSRF token is refused (403), and charges nothing.
        refused = await payer.post(cs["url"], data={"card_number": "4242424242424242", "expiry": "12/34", "cvc": "1"})
        assert refused.status_code == 403
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"


async def test_0341_starts_a_trial_but_fails_a_payment(server: Server, page: Page) -> None:
    async with server.client() as api:
        trial = await price(api, "15.00", interval="month", trial_days=3)
        cs = await session(api, trial["id"], mode="subscription", customer_email="f@example.com")
        await page.goto(cs["url"])
        await fill_card(page, "4000 0000 0000 0002")  # cannot even be saved: the trial is refused
        await page.get_by_role("button", name="Start trial").click()
        await expect(page.get_by_role("alert")).to_contain_text("declined")
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"
        await fill_card(page, "4000 0000 0000 0341")
        await page.get_by_role("button", name="Start trial").click()
        await expect(page.get_by_role("heading", name="Your trial has started")).to_be_visible()
        one_time = await price(api, "15.00")
        cs2 = await session(api, one_time["id"], customer_email="f@example.com")
        await page.goto(cs2["url"])
        await fill_card(page, "4000 0000 0000 0341")
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("alert")).to_contain_text("declined")
        await screenshot(page, "pay-checkout-0341-declined")


def test_serve_fills_the_public_url_from_its_address_or_the_flag(tmp_path: object) -> None:
    for flag, expected in ((None, "http://127.0.0.1:{port}"), ("https://pay.example.com", "https://pay.example.com")):
        port = free_port()
        args = [sys.executable, "-m", "paywire.cli.main", "serve", "--port", str(port),
                "--database-url", f"sqlite:///{tmp_path}/serve-{port}.db"]  # fmt: skip
        if flag:
            args += ["--public-url", flag]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        try:
            key = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not key:
                line = proc.stderr.readline() if proc.stderr else ""
                found = re.search(r"sk_test_[A-Za-z0-9_-]+", line)
                key = found.group(0) if found else key
            assert key
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            base = f"http://127.0.0.1:{port}"
            product = httpx.post(f"{base}/api/products", json={"name": "p"}, headers=headers).json()
            p = httpx.post(f"{base}/api/prices", json={"product_id": product["id"], "unit_amount": "1.00",
                                                       "currency": "usd"}, headers=headers).json()  # fmt: skip
            cs = httpx.post(f"{base}/api/checkout-sessions", headers=headers,
                            json={"mode": "payment", "line_items": [{"price_id": p["id"]}]}).json()  # fmt: skip
            assert cs["url"] == f"{expected.format(port=port)}/pay/checkout/{cs['id']}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def test_the_refusal_pages(server: Server, page: Page) -> None:
    """A form whose CSRF cookie is gone, and a portal link not opened in time: each says why."""
    async with server.client() as api:
        p = await price(api, "6.00")
        cs = await session(api, p["id"], customer_email="r@example.com")
        await page.goto(cs["url"])
        await fill_card(page)
        await page.context.clear_cookies()
        await page.get_by_role("button", name="Pay").click()
        await expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
        await screenshot(page, "pay-csrf-refused")
        assert (await ok(api.get(f"/api/checkout-sessions/{cs['id']}")))["status"] == "open"

        customer = await ok(api.post("/api/customers", json={"email": "late@example.com"}))
        body = {"customer_id": customer["id"], "return_url": "https://shop.example/"}
        portal = await ok(api.post("/api/billing-portal/sessions", json=body))
        async with server.app.db.transaction() as tx:
            table = billing_portal_sessions
            await tx.conn.execute(sa.update(table).where(table.c.id == portal["id"]).values(expires_at=1))
        answer = await page.goto(portal["url"])
        assert answer is not None and answer.status == 410
        await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
        await expect(page.get_by_role("link", name="Go back")).to_have_attribute("href", "https://shop.example/")
        await screenshot(page, "pay-portal-link-expired")

"""The dashboard in a real browser (Debian's Chromium) on a real server (SQLite), with a real
webhook receiver: sign in, add an endpoint, watch an event arrive live, see its failed attempt,
resend it, reveal and rotate the secret, escaping, test clocks, cancel, refund, a viewer's
limits. Every page is screenshotted (desktop, and some at 375 px)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import sqlalchemy as sa
from playwright.async_api import Browser, Dialog, Page, expect

from paywire.db.schema import audit_log, events
from paywire.events.local import store_position
from paywire.webhooks import endpoints as endpoints_engine
from tests.conftest import Server
from tests.web.conftest import screenshot
from tests.web.dashboard_helpers import (
    ADMIN,
    VIEWER,
    FlakyReceiver,
    create_operator,
    receiver,
    slow_retry_server,
)

__all__ = ["receiver", "slow_retry_server"]  # fixtures

XSS = "<script>alert(1)</script>"


async def sign_in(page: Page, url: str, email: str, password: str) -> None:
    await page.goto(f"{url}/dashboard/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def reload_until(page: Page, selector: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while await page.locator(selector).count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never appeared")
        await page.wait_for_timeout(300)
        await page.reload()


async def api_post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_operator_flow_in_the_browser(
    slow_retry_server: Server, receiver: FlakyReceiver, browser: Browser, page: Page
) -> None:
    server = slow_retry_server
    url = server.url
    await create_operator(server.app, *ADMIN)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", on_dialog)

    # Sign in.
    await page.goto(f"{url}/dashboard/events")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await screenshot(page, "dashboard-sign-in")
    await page.get_by_label("Email").fill(ADMIN[0])
    await page.get_by_label("Password").fill(ADMIN[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Events")).to_be_visible()  # back where it was going
    await expect(page.get_by_text("Test mode — you are viewing test data")).to_be_visible()
    await screenshot(page, "dashboard-events-empty")
    await page.get_by_role("link", name="Overview").click()
    await screenshot(page, "dashboard-overview-empty")

    # Add an endpoint pointing at the receiver (its first answer is a 500).
    await page.get_by_role("link", name="Endpoints", exact=True).click()
    await expect(page.get_by_text("No endpoints yet")).to_be_visible()
    await screenshot(page, "dashboard-endpoints-empty")
    await page.get_by_role("link", name="Add endpoint").first.click()
    await page.get_by_label("Endpoint URL").fill(receiver.url)
    await page.get_by_label("Description").fill("Order service")
    await screenshot(page, "dashboard-endpoint-new")
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.get_by_text("Order service")).to_be_visible()
    endpoint_id = page.url.rsplit("/", 1)[1].split("?")[0]
    assert endpoint_id.startswith("we_")

    # The live tail: an event caused through the API appears without a reload.
    await page.get_by_role("link", name="Live", exact=True).click()
    await expect(page.locator("#live-status")).to_have_text("Live")
    async with server.client() as api:
        customer = await api_post(api, "/api/customers", {"name": XSS, "email": "x@example.com"})
    row = page.locator("#live-feed li.live-row").first
    await expect(row).to_contain_text("customer.created")
    await expect(row).to_contain_text(customer["id"])
    await screenshot(page, "dashboard-live")
    # Pause holds new events back until Resume.
    await page.get_by_role("button", name="Pause").click()
    async with server.client() as api:
        await api.put(f"/api/customers/{customer['id']}", json={"description": "held while paused"})
    await expect(page.locator("#live-status")).to_have_text("Paused (1 new)")
    assert await page.locator("#live-feed li.live-row").count() == 1
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#live-feed li.live-row")).to_have_count(2)

    # Open the event: the failed attempt with its response status and excerpt.
    await page.locator("#live-feed li.live-row", has_text="customer.created").get_by_role("link").click()
    await expect(page.get_by_role("heading", name="customer.created")).to_be_visible()
    await reload_until(page, "tr.attempt-failed")
    failed = page.locator("tr.attempt-failed")
    await expect(failed).to_contain_text("500")
    await expect(failed).to_contain_text("receiver warming up: please retry")
    await expect(page.locator("#event-json")).to_contain_text('"object_id"')
    await screenshot(page, "dashboard-event-failed")

    # Resend to that endpoint: the succeeded attempt appears.
    await page.locator("section.delivery").get_by_role("button", name="Resend").click()
    await expect(page.get_by_text("The event was queued again")).to_be_visible()
    await reload_until(page, "tr.attempt-succeeded")
    await expect(page.locator("tr.attempt-succeeded")).to_contain_text("200")
    await expect(page.locator("tr.attempt-succeeded")).to_contain_text("ok, got it")
    await page.get_by_role("button", name="Copy").click()
    await screenshot(page, "dashboard-event-resent")

    # Reveal and rotate the secret.
    await page.goto(f"{url}/dashboard/endpoints/{endpoint_id}")
    await page.get_by_role("button", name="Reveal secret").click()
    async with server.app.db.read() as conn:  # stored encrypted: the page shows it decrypted
        stored = await endpoints_engine.secret(conn, server.app.keyring, endpoint_id, livemode=False)
    assert stored.startswith("whsec_")
    await expect(page.locator("#endpoint-secret")).to_have_text(stored)
    await screenshot(page, "dashboard-endpoint-secret")
    await page.get_by_label("Old secret keeps working for").select_option("3600")
    await page.get_by_role("button", name="Rotate secret").click()  # the JS confirm is accepted
    await expect(page.get_by_text("The new signing secret.")).to_be_visible()
    rotated = await page.locator("#endpoint-secret").inner_text()
    assert rotated.startswith("whsec_") and rotated != stored
    await expect(page.get_by_text("still signing until")).to_be_visible()
    await screenshot(page, "dashboard-endpoint")

    # Send a test event to this endpoint alone.
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.get_by_role("heading", name="webhook_endpoint.test")).to_be_visible()
    await reload_until(page, "tr.attempt-succeeded")

    # Edit: choose event types from the catalogue.
    await page.goto(f"{url}/dashboard/endpoints/{endpoint_id}/edit")
    await page.get_by_label("All events (including types added later)").uncheck()
    await page.get_by_label("customer.created", exact=False).first.check()
    await screenshot(page, "dashboard-endpoint-edit")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    await page.get_by_role("link", name="Endpoints", exact=True).click()
    await expect(page.locator("table")).to_contain_text(receiver.url)
    await screenshot(page, "dashboard-endpoints")

    # A customer named <script>… renders as text; no dialog fired.
    await page.get_by_role("link", name="Customers").click()
    await expect(page.get_by_text(XSS).first).to_be_visible()
    await screenshot(page, "dashboard-customers")
    await page.get_by_role("link", name=customer["id"]).first.click()
    await expect(page.get_by_text(XSS).first).to_be_visible()
    await screenshot(page, "dashboard-customer")

    # Billing on a test clock: create it from the page, subscribe through the API, advance.
    await page.get_by_role("link", name="Test clocks").click()
    await screenshot(page, "dashboard-test-clocks-empty")
    await page.get_by_label("Name").fill("Renewal check")
    await page.get_by_label("Frozen time (UTC)").fill("2026-01-15T12:00")
    await page.get_by_role("button", name="Create test clock").click()
    await expect(page.get_by_text("Renewal check").first).to_be_visible()
    clock_id = page.url.rsplit("/", 1)[1].split("?")[0]
    async with server.client() as api:
        product = await api_post(api, "/api/products", {"name": "Pro plan"})
        price = await api_post(
            api,
            "/api/prices",
            {"product_id": product["id"], "unit_amount": "20.00", "currency": "usd",
             "recurring": {"interval": "month", "interval_count": 1}},
        )  # fmt: skip
        buyer = await api_post(api, "/api/customers", {"name": "Clocked buyer", "test_clock_id": clock_id})
        sub = await api_post(
            api,
            "/api/subscriptions",
            {"customer_id": buyer["id"], "items": [{"price_id": price["id"], "quantity": 1}],
             "default_payment_method": "pm_card_visa"},
        )  # fmt: skip
    await page.reload()
    await page.get_by_label("Advance to").fill("2026-02-16T12:00")
    await page.get_by_role("button", name="Advance clock").click()
    await expect(page.locator("dl.fields")).to_contain_text("ready", timeout=20_000)
    await expect(page.get_by_role("heading", name="Events from this advance")).to_be_visible()
    await expect(page.get_by_text("customer.subscription.renewed").first).to_be_visible()
    await screenshot(page, "dashboard-test-clock")
    await page.get_by_role("link", name="Test clocks").click()
    await screenshot(page, "dashboard-test-clocks")

    # The subscription's own timeline; cancel at period end, then now (each confirmed first).
    await page.goto(f"{url}/dashboard/subscriptions/{sub['id']}")
    await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    await expect(page.get_by_text("customer.subscription.created").first).to_be_visible()
    await screenshot(page, "dashboard-subscription")
    await page.get_by_role("link", name="Cancel at period end…").click()
    await screenshot(page, "dashboard-subscription-cancel-confirm")
    await page.get_by_role("button", name="Cancel at period end").click()
    await expect(page.get_by_text("The subscription was canceled.")).to_be_visible()
    await page.get_by_role("link", name="Cancel now…").click()
    await page.get_by_role("button", name="Cancel subscription now").click()
    await expect(page.locator("dl.fields")).to_contain_text("canceled")
    await page.get_by_role("link", name="Subscriptions").click()
    await screenshot(page, "dashboard-subscriptions")

    # Refund part of a payment, after the confirmation step.
    await page.get_by_role("link", name="Payments").click()
    await screenshot(page, "dashboard-payments")
    await page.locator("table a[href*='/payments/pi_']").first.click()
    await page.get_by_label("Amount (USD)").fill("5.00")
    await page.get_by_label("Reason").select_option("requested_by_customer")
    await page.get_by_role("button", name="Refund…").click()
    await expect(page.get_by_role("heading", name="Refund 5.00 USD?")).to_be_visible()
    await screenshot(page, "dashboard-refund-confirm")
    await page.get_by_role("button", name="Refund payment").click()
    await expect(page.get_by_text("The refund succeeded.")).to_be_visible()
    await screenshot(page, "dashboard-payment")
    await page.get_by_role("link", name="Refunds").click()
    await expect(page.locator("table")).to_contain_text("5.00")
    await screenshot(page, "dashboard-refunds")
    await page.locator("table a[href*='/refunds/re_']").first.click()
    await screenshot(page, "dashboard-refund")
    await page.get_by_role("link", name="Invoices").click()
    await screenshot(page, "dashboard-invoices")
    await page.locator("table a[href*='/invoices/in_']").first.click()
    await screenshot(page, "dashboard-invoice")

    # The remaining pages.
    await page.goto(f"{url}/dashboard/events?type=customer.*")
    await expect(page.locator("table")).to_contain_text("customer.created")
    await expect(page.locator("table")).not_to_contain_text("invoice.")
    await screenshot(page, "dashboard-events")
    await page.get_by_role("link", name="Attempts").click()
    await screenshot(page, "dashboard-attempts")
    await page.get_by_role("link", name="Event types").click()
    await screenshot(page, "dashboard-event-types")
    async with server.app.db.read() as conn:
        first_seq = await conn.scalar(sa.select(sa.func.min(events.c.seq)))
    await store_position(server.app.db, "billing-sync", False, first_seq, None, time.time())
    await page.get_by_role("link", name="Overview").click()
    await expect(page.locator("svg.chart")).to_be_visible()
    await expect(page.get_by_role("row", name="billing-sync")).to_be_visible()
    await screenshot(page, "dashboard-overview")
    await page.get_by_role("link", name="Audit log").click()
    for action in ("Signed in", "Revealed secret", "Rotated secret", "Resent event", "Advanced test clock",
                   "Refunded payment", "Canceled subscription"):  # fmt: skip
        await expect(page.locator("table").get_by_text(action).first).to_be_visible()
    await screenshot(page, "dashboard-audit")

    # Live mode: the switch in the top bar; test objects are not shown there.
    await page.get_by_role("button", name="Switch to live").click()
    await expect(page.get_by_text("Test mode — you are viewing test data")).to_have_count(0)
    await page.get_by_role("link", name="Customers").click()
    await expect(page.get_by_text("No customers yet")).to_be_visible()
    await screenshot(page, "dashboard-customers-live")
    await page.get_by_role("button", name="Switch to test").click()

    # 375 px wide: tables scroll inside their wrapper, the page itself does not.
    await page.set_viewport_size({"width": 375, "height": 800})
    for path, name in (("/", "overview"), ("/events", "events"), (f"/endpoints/{endpoint_id}", "endpoint")):
        await page.goto(f"{url}/dashboard{path}")
        await screenshot(page, f"dashboard-{name}-375")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = await page.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".map(e => e.tagName + '.' + e.className).slice(0, 5).join(' ')"
        )
        assert overflow <= 1, f"{path} is {overflow}px wider than the screen: {wide}"

    # Sign out.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.goto(f"{url}/dashboard/events")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert dialogs == ["Rotate the signing secret? Receivers must switch to the new one."]  # no alert(1)
    async with server.app.db.read() as conn:
        actions = set((await conn.execute(sa.select(audit_log.c.action))).scalars())
    assert {"sign_in", "sign_out", "secret_revealed", "secret_rotated", "event_resent"} <= actions


async def test_a_viewer_sees_no_actions_and_the_server_refuses_them(
    slow_retry_server: Server, receiver: FlakyReceiver, page: Page
) -> None:
    server = slow_retry_server
    await create_operator(server.app, *VIEWER, role="viewer")
    async with server.client() as api:
        endpoint = await api_post(api, "/api/webhook-endpoints", {"url": receiver.url, "enabled_events": ["*"]})
        await api_post(api, "/api/customers", {"name": "Ada"})
        event = (await api.get("/api/events")).json()["list"][0]
    await sign_in(page, server.url, *VIEWER)
    await page.goto(f"{server.url}/dashboard/events/{event['id']}")
    await reload_until(page, "tr.attempt")
    await expect(page.get_by_role("button", name="Resend")).to_have_count(0)
    await screenshot(page, "dashboard-event-viewer")
    await page.goto(f"{server.url}/dashboard/endpoints/{endpoint['id']}")
    await expect(page.get_by_role("button", name="Reveal secret")).to_have_count(0)
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await screenshot(page, "dashboard-endpoint-viewer")
    # The same POSTs, with the viewer's valid session and CSRF token, are refused by the server.
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    for path in (f"/endpoints/{endpoint['id']}/reveal-secret", f"/events/{event['id']}/resend"):
        response = await page.request.post(f"{server.url}/dashboard{path}", form={"csrf_token": token})
        assert response.status == 403, path
        assert "admin role" in await response.text()
    await page.goto(f"{server.url}/dashboard/endpoints/new")
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await screenshot(page, "dashboard-forbidden")


async def test_broker_destinations_show_beside_the_webhook_endpoints(
    slow_retry_server: Server, receiver: FlakyReceiver, page: Page
) -> None:
    """A RabbitMQ destination (the real broker on this machine) is listed and shown with the
    webhooks: its type, its masked URL and exchange, its ordering, its delivered attempt; it has
    no URL form to edit, and its password never reaches the page."""
    server = slow_retry_server
    await create_operator(server.app, *ADMIN)
    async with server.client() as api:
        await api_post(api, "/api/webhook-endpoints", {"url": receiver.url, "enabled_events": ["*"]})
        config = {"url": "amqp://guest:guest@127.0.0.1:5672/", "exchange": "amq.topic"}
        broker = await api_post(
            api,
            "/api/event-destinations",
            {"type": "rabbitmq", "enabled_events": ["customer.created"], "config": config, "ordering": "per_object"},
        )
        await api_post(api, "/api/customers", {"name": "Ada"})
    await sign_in(page, server.url, *ADMIN)
    await page.goto(f"{server.url}/dashboard/endpoints")
    shown = "amqp://guest:****@127.0.0.1:5672/ → amq.topic"
    row = page.locator("tr", has=page.get_by_role("link", name=shown))
    await expect(row).to_contain_text("rabbitmq")
    await expect(row).to_contain_text("ordered per object")
    await expect(page.locator("tr", has=page.get_by_role("link", name=receiver.url))).to_contain_text("webhook")
    deadline = time.monotonic() + 15
    while "of 1" not in await row.inner_text():  # the broker confirmed the event's message
        assert time.monotonic() < deadline, await row.inner_text()
        await page.wait_for_timeout(300)
        await page.reload()
    assert "guest:guest" not in await page.content()
    await screenshot(page, "dashboard-destinations")
    await page.get_by_role("link", name=shown).click()
    await expect(page.get_by_role("heading", name=shown)).to_be_visible()
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(page.get_by_role("button", name="Disable")).to_be_visible()
    assert broker["id"] in await page.content() and "guest:guest" not in await page.content()
    await screenshot(page, "dashboard-destination")
    await page.goto(f"{server.url}/dashboard/attempts")
    await expect(page.get_by_role("option", name=shown)).to_have_count(1)

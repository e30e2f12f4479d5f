"""The dashboard's access rules over plain HTTP on a real server, on SQLite and PostgreSQL:
sign-in, cookies, sessions, CSRF, roles, escaping, throttling, modes, keyset pages, the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from paywire.billing import customers
from paywire.billing.runtime import Billing
from paywire.cli.main import app as cli
from paywire.db.engine import Database
from paywire.db.schema import audit_log, operator_sessions, webhook_deliveries
from paywire.ops import operators
from paywire.schemas import CustomerCreate, CustomerUpdate, WebhookEndpointCreate
from paywire.web.dashboard import auth
from paywire.webhooks import endpoints
from paywire.webhooks.ping import send_test_event
from tests.conftest import Server
from tests.web.dashboard_helpers import ADMIN, VIEWER, Browserless, create_operator


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[Browserless]:
    await create_operator(server.app, *ADMIN)
    client = Browserless(server)
    response = await client.sign_in(*ADMIN)
    assert response.status_code == 303, response.text
    yield client
    await client.close()


@pytest.fixture
async def viewer(server: Server) -> AsyncIterator[Browserless]:
    await create_operator(server.app, *VIEWER, role="viewer")
    client = Browserless(server)
    assert (await client.sign_in(*VIEWER)).status_code == 303
    yield client
    await client.close()


async def test_every_page_needs_a_session(server: Server) -> None:
    client = Browserless(server)
    for path in ("/dashboard/", "/dashboard/events", "/dashboard/endpoints", "/dashboard/live/stream"):
        response = await client.get(path)
        assert response.status_code == 303 and "/dashboard/sign-in" in response.headers["location"], path
    # An API key is no way in either.
    response = await client.http.get("/dashboard/", headers={"Authorization": f"Bearer {server.test_key}"})
    assert response.status_code == 303
    await client.close()


async def test_the_session_cookie_is_hardened_and_only_its_hash_is_stored(server: Server) -> None:
    await create_operator(server.app, *ADMIN)
    client = Browserless(server)
    response = await client.sign_in(*ADMIN)
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(auth.SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    token = client.http.cookies[auth.SESSION_COOKIE]
    async with server.app.db.read() as conn:
        stored = list((await conn.execute(sa.select(operator_sessions.c.token_hash))).scalars())
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert (await client.get("/dashboard/")).status_code == 200
    # Sign out ends it on the server: the old cookie no longer works.
    assert (await client.post("/dashboard/sign-out")).status_code == 303
    client.http.cookies.set(auth.SESSION_COOKIE, token, path="/dashboard")
    assert (await client.get("/dashboard/")).status_code == 303
    await client.close()


async def test_sessions_end_after_idle_time_and_at_their_absolute_limit(server: Server, admin: Browserless) -> None:
    assert (await admin.get("/dashboard/")).status_code == 200
    async with server.app.db.transaction() as tx:
        await tx.conn.execute(
            operator_sessions.update().values(last_seen=int(time.time()) - operators.IDLE_TIMEOUT - 1)
        )
    assert (await admin.get("/dashboard/")).status_code == 303
    assert (await admin.sign_in(*ADMIN)).status_code == 303
    async with server.app.db.transaction() as tx:
        await tx.conn.execute(operator_sessions.update().values(expires=int(time.time()) - 1))
    assert (await admin.get("/dashboard/")).status_code == 303


async def test_a_post_without_the_csrf_token_is_refused(server: Server, admin: Browserless) -> None:
    await admin.get("/dashboard/endpoints/new")
    form = {"url": "http://127.0.0.1:9/hook", "all_events": "1"}
    refused = await admin.post("/dashboard/endpoints/new", form, csrf=False)
    assert refused.status_code == 403 and "security token" in refused.text
    wrong = await admin.post("/dashboard/endpoints/new", {**form, "csrf_token": "x" * 43}, csrf=False)
    assert wrong.status_code == 403
    assert (await admin.post("/dashboard/sign-out", csrf=False)).status_code == 403
    assert (await admin.get("/dashboard/")).status_code == 200  # still signed in
    created = await admin.post("/dashboard/endpoints/new", form)
    assert created.status_code == 303 and "/dashboard/endpoints/we_" in created.headers["location"]


async def test_a_viewer_can_read_but_every_action_is_refused(server: Server, viewer: Browserless) -> None:
    async with server.client() as api:
        endpoint = (
            await api.post("/api/webhook-endpoints", json={"url": "http://127.0.0.1:9/h", "enabled_events": ["*"]})
        ).json()
        await api.post("/api/customers", json={"name": "Ada"})
        event = (await api.get("/api/events")).json()["list"][0]
    for path in ("/dashboard/", f"/dashboard/events/{event['id']}", f"/dashboard/endpoints/{endpoint['id']}"):
        page = await viewer.get(path)
        assert page.status_code == 200, path
        assert "Reveal secret" not in page.text and ">Resend<" not in page.text
    ep = endpoint["id"]
    actions = [
        "/dashboard/endpoints/new", f"/dashboard/endpoints/{ep}/edit", f"/dashboard/endpoints/{ep}/status",
        f"/dashboard/endpoints/{ep}/delete", f"/dashboard/endpoints/{ep}/reveal-secret",
        f"/dashboard/endpoints/{ep}/rotate-secret", f"/dashboard/endpoints/{ep}/recover",
        f"/dashboard/endpoints/{ep}/test-event", f"/dashboard/events/{event['id']}/resend",
        "/dashboard/subscriptions/sub_x/cancel", "/dashboard/payments/pi_x/refund", "/dashboard/test-clocks",
        "/dashboard/test-clocks/clock_x/advance",
    ]  # fmt: skip
    for path in actions:
        response = await viewer.post(path, {"url": "http://127.0.0.1:9/x", "since": "2026-01-01T00:00"})
        assert response.status_code == 403, path
    async with server.app.db.read() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.action != "sign_in")
        )
    assert count == 0  # nothing happened
    for path in ("/dashboard/endpoints/new", f"/dashboard/endpoints/{ep}/edit", f"/dashboard/endpoints/{ep}/delete"):
        assert (await viewer.get(path)).status_code == 403, path


async def test_user_data_is_escaped_everywhere(server: Server, admin: Browserless) -> None:
    name = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    async with server.client() as api:
        customer = (await api.post("/api/customers", json={"name": name, "description": name})).json()
    event_id = (await server.client().get("/api/events")).json()["list"][0]["id"]
    for path in ("/dashboard/customers", f"/dashboard/customers/{customer['id']}", f"/dashboard/events/{event_id}"):
        page = await admin.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_failed_sign_ins_are_throttled_per_email(server: Server) -> None:
    await create_operator(server.app, *ADMIN)
    client = Browserless(server)
    for _ in range(operators.MAX_FAILURES_PER_EMAIL):
        response = await client.sign_in(ADMIN[0], "wrong password!")
        assert response.status_code == 401 and "Wrong email or password" in response.text
    blocked = await client.sign_in(*ADMIN)  # even the right password, for now
    assert blocked.status_code == 429 and "too many failed sign-ins" in blocked.text
    # Another email from elsewhere is not blocked (the per-address limit is higher).
    await create_operator(server.app, "other@example.com", "other-password-1")
    assert (await client.sign_in("other@example.com", "other-password-1")).status_code == 303
    async with server.app.db.read() as conn:
        failed = await conn.scalar(
            sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.action == "sign_in_failed")
        )
    assert failed == operators.MAX_FAILURES_PER_EMAIL + 1  # the refused (throttled) one is audited too
    await client.close()


async def test_the_mode_switch_filters_every_list(server: Server, admin: Browserless) -> None:
    async with server.client() as api:
        await api.post("/api/customers", json={"name": "Test person"})
    async with server.client(server.live_key) as live:
        await live.post("/api/customers", json={"name": "Live person"})
    page = await admin.get("/dashboard/customers")
    assert "Test person" in page.text and "Live person" not in page.text and "Test mode" in page.text
    assert (await admin.post("/dashboard/mode", {"mode": "live", "next": "/dashboard/customers"})).status_code == 303
    page = await admin.get("/dashboard/customers")
    assert "Live person" in page.text and "Test person" not in page.text and "Test mode —" not in page.text
    events = await admin.get("/dashboard/events")
    assert events.text.split("<tbody>")[1].count(">customer.created<") == 1


async def _customers(db: Database, n: int, *, livemode: bool = False) -> list[str]:
    ids = []
    call = Billing().call(livemode)  # the wall clock
    async with db.transaction() as tx:
        for i in range(n):
            made = await customers.create(tx, call, CustomerCreate(name=f"c{i}"))
            ids.append(made["id"])
            if i % 3 == 0:
                await customers.update(tx, call, made["id"], CustomerUpdate(description="x"))
    return ids


def _event_ids(html: str) -> list[str]:
    import re

    return list(dict.fromkeys(re.findall(r'href="/dashboard/events/(evt_[A-Za-z0-9]+)"', html)))


async def test_event_lists_page_by_keyset_older_and_newer(server: Server, admin: Browserless) -> None:
    await _customers(server.app.db, 100)  # 100 created + 34 updated
    first = await admin.get("/dashboard/events")
    page1 = _event_ids(first.text)
    assert len(page1) == 50
    older = next(line for line in first.text.split('"') if "before=" in line).replace("&amp;", "&")
    second = await admin.get(older)
    page2 = _event_ids(second.text)
    assert len(page2) == 50 and not set(page1) & set(page2)
    newer = next(line for line in second.text.split('"') if "after=" in line).replace("&amp;", "&")
    assert _event_ids((await admin.get(newer)).text) == page1
    # A prefix filter pages through the catalogue's types under it, merged in order.
    seen: list[str] = []
    url: str | None = "/dashboard/events?type=customer.*"
    while url:
        response = await admin.get(url)
        seen += _event_ids(response.text)
        url = next((p.replace("&amp;", "&") for p in response.text.split('"') if "before=" in p), None)
    assert len(seen) == 134 == len(set(seen))
    updated = await admin.get("/dashboard/events?type=customer.updated")
    assert len(_event_ids(updated.text)) == 34
    assert "customer.created" not in updated.text.split("<tbody>")[1]


async def test_a_test_event_goes_to_its_endpoint_alone(server: Server) -> None:
    db = server.app.db
    async with db.transaction() as tx:
        one = await endpoints.create(
            tx, WebhookEndpointCreate(url="http://127.0.0.1:9/a", enabled_events=["*"]), livemode=False, now=time.time()
        )
        await endpoints.create(
            tx, WebhookEndpointCreate(url="http://127.0.0.1:9/b", enabled_events=["*"]), livemode=False, now=time.time()
        )
        event = await send_test_event(tx, one["id"], livemode=False, now=time.time())
    assert event["type"] == "webhook_endpoint.test" and event["data"]["object"]["id"] == one["id"]
    async with db.read() as conn:
        targets = list(
            (
                await conn.execute(
                    sa.select(webhook_deliveries.c.endpoint_id).where(webhook_deliveries.c.event_id == event["id"])
                )
            ).scalars()
        )
    assert targets == [one["id"]]


async def test_operators_create_reads_the_password_from_stdin(database_url: str) -> None:
    runner = CliRunner()
    args = ["operators", "create", "Ops@Example.com", "--role", "viewer", "--database-url", database_url]
    result = await asyncio.to_thread(runner.invoke, cli, args, input="a long enough password\n")
    assert result.exit_code == 0, result.output
    listed = await asyncio.to_thread(runner.invoke, cli, ["operators", "list", "--database-url", database_url])
    assert "ops@example.com\tviewer" in listed.stdout
    again = await asyncio.to_thread(runner.invoke, cli, args, input="a long enough password\n")
    assert again.exit_code == 1 and "already exists" in again.output
    short = await asyncio.to_thread(
        runner.invoke, cli, ["operators", "create", "x@example.com", "--database-url", database_url], input="short\n"
    )
    assert short.exit_code == 1 and "at least" in short.output
    db = Database(database_url)
    try:
        async with db.read() as conn:
            found = await operators.verify_password(conn, "ops@example.com", "a long enough password")
            assert found is not None and found["role"] == "viewer" and found["password_hash"].startswith("$argon2id$")
            assert await operators.verify_password(conn, "ops@example.com", "wrong") is None
    finally:
        await db.dispose()
    deleted = await asyncio.to_thread(
        runner.invoke, cli, ["operators", "delete", "ops@example.com", "--database-url", database_url]
    )
    assert deleted.exit_code == 0


def test_the_audit_log_has_no_way_to_change_it() -> None:
    from paywire.web.dashboard.app import create_app

    routes = [r for r in create_app.__globals__["overview"].router.routes if "audit" in getattr(r, "path", "")]
    assert routes and all(r.methods == {"GET"} for r in routes)  # type: ignore[attr-defined]


async def test_endpoint_health_counts_the_last_24_hours(server: Server, admin: Browserless) -> None:
    from paywire.db.schema import webhook_attempts
    from paywire.web.dashboard.endpoints import health
    from paywire.webhooks import rollups

    now = time.time()
    rows = [
        {
            "id": f"wha_t{i}", "livemode": False, "delivery_seq": i, "event_id": f"evt_{i}", "endpoint_id": "we_h",
            "status": "failed" if i % 4 == 0 else "succeeded", "response_status": 200, "response_body": "",
            "retry_count": 0, "duration_ms": i, "error": None, "error_type": None, "next_retry": None,
            "created": now - 60 - i,
        }
        for i in range(1, 101)
    ] + [  # older than 24 h: not counted
        {
            "id": "wha_old", "livemode": False, "delivery_seq": 0, "event_id": "evt_old", "endpoint_id": "we_h",
            "status": "failed", "response_status": 500, "response_body": "", "retry_count": 0, "duration_ms": 9999,
            "error": None, "error_type": None, "next_retry": None, "created": now - 2 * 86_400,
        }
    ]  # fmt: skip
    async with server.app.db.transaction() as tx:
        await tx.conn.execute(webhook_attempts.insert(), rows)
        await rollups.add(tx.conn, rows, owner="wkr_test")  # as `attempts.record` does
    async with server.app.db.read() as conn:
        stats = await health(conn, "we_h", now)
        assert (await health(conn, "we_none", now)).success_rate is None
    assert stats.attempts == 100 and stats.succeeded == 75 and stats.success_rate == 75.0
    # From the rollups' latency histogram: interpolated inside the 50-100 ms bucket.
    assert stats.p50 in (50, 51) and stats.p95 in (95, 96)


async def test_refund_and_cancel_take_a_confirmation_step(server: Server, admin: Browserless) -> None:
    async with server.client() as api:
        product = (await api.post("/api/products", json={"name": "Plan"})).json()
        recurring = {"interval": "month", "interval_count": 1}
        price = (
            await api.post(
                "/api/prices",
                json={"product_id": product["id"], "unit_amount": "20.00", "currency": "usd", "recurring": recurring},
            )
        ).json()
        customer = (await api.post("/api/customers", json={"name": "Buyer"})).json()
        items = [{"price_id": price["id"], "quantity": 1}]
        sub = (
            await api.post(
                "/api/subscriptions",
                json={"customer_id": customer["id"], "items": items, "default_payment_method": "pm_card_visa"},
            )
        ).json()
        payment = (await api.get("/api/payment-intents")).json()["list"][0]
    pay = f"/dashboard/payments/{payment['id']}"
    await admin.get(pay)
    bad = await admin.post(f"{pay}/refund", {"amount": "abc"})
    assert bad.status_code == 400 and "amount" in bad.text
    confirm = await admin.post(f"{pay}/refund", {"amount": "5.00", "reason": "duplicate"})
    assert confirm.status_code == 200 and "Refund 5.00 USD?" in confirm.text
    async with server.client() as api:
        assert (await api.get("/api/refunds")).json()["count"] == 0  # not yet
    done = await admin.post(f"{pay}/refund", {"amount": "5.00", "reason": "duplicate", "confirm": "yes"})
    assert done.status_code == 303
    async with server.client() as api:
        refunds = (await api.get("/api/refunds")).json()["list"]
    assert [r["amount"] for r in refunds] == ["5.00"]
    page = await admin.get(f"/dashboard/subscriptions/{sub['id']}/cancel?when=period_end")
    assert page.status_code == 200 and "Cancel at the end of the period?" in page.text
    assert (await admin.post(f"/dashboard/subscriptions/{sub['id']}/cancel", {"when": "period_end"})).status_code == 303
    async with server.client() as api:
        after = (await api.get(f"/api/subscriptions/{sub['id']}")).json()
    assert after["cancel_at_period_end"] is True and after["status"] == "active"

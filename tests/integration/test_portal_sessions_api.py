"""`POST /api/billing-portal/sessions` on both databases: a short-lived, single-use URL."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa

from paywire.db.schema import billing_portal_sessions
from tests.conftest import Server
from tests.web.payer_helpers import ok


async def test_portal_sessions_are_short_lived_and_single_use(server: Server, api: httpx.AsyncClient) -> None:
    customer = await ok(api.post("/api/customers", json={"email": "p@example.com"}))
    body = await ok(
        api.post(
            "/api/billing-portal/sessions",
            json={"customer": customer["id"], "return_url": "https://shop.example/account", "locale": "zh"},
        )
    )
    assert body["id"].startswith("bps_") and body["object"] == "billing_portal.session"
    assert body["customer_id"] == body["customer"] == customer["id"] and body["locale"] == "zh"
    assert body["url"].startswith(f"{server.url}/pay/portal/open/")
    assert 0 < body["expires_at"] - time.time() <= 300
    async with server.app.db.read() as conn:
        stored = (await conn.execute(sa.select(billing_portal_sessions))).mappings().one()
    assert body["url"].rsplit("/", 1)[1] not in str(dict(stored))  # only the token's hash is kept

    # Concurrent first visits: exactly one gets the portal cookie.
    async with httpx.AsyncClient() as a, httpx.AsyncClient() as b:
        answers = await asyncio.gather(a.get(body["url"]), b.get(body["url"]))
        assert sorted(r.status_code for r in answers) == [303, 410]
        winner = a if answers[0].status_code == 303 else b
        cookie = next(c for c in winner.cookies.jar if c.name == "paywire_portal")
        assert cookie.path == "/pay/portal" and cookie.has_nonstandard_attr("HttpOnly")
        home = await winner.get(f"{server.url}/pay/portal")
        assert home.status_code == 200 and "p@example.com" in home.text and "账单" in home.text
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]

    # A URL not opened in time is refused.
    late = await ok(api.post("/api/billing-portal/sessions", json={"customer_id": customer["id"]}))
    async with server.app.db.transaction() as tx:
        await tx.conn.execute(
            billing_portal_sessions.update().where(billing_portal_sessions.c.id == late["id"]).values(expires_at=1)
        )
    async with httpx.AsyncClient() as browser:
        expired = await browser.get(late["url"])
        assert expired.status_code == 410 and "expired" in expired.text
        assert (await browser.get(f"{server.url}/pay/portal/open/not-a-token")).status_code == 404


async def test_portal_sessions_refuse_bad_customers(server: Server, api: httpx.AsyncClient) -> None:
    missing = await api.post("/api/billing-portal/sessions", json={"customer_id": "cus_nope"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "customer_id"
    assert (await api.post("/api/billing-portal/sessions", json={})).status_code == 400
    customer = await ok(api.post("/api/customers", json={"email": "x@example.com"}))
    bad_url = await api.post(
        "/api/billing-portal/sessions", json={"customer_id": customer["id"], "return_url": "ftp://x"}
    )
    assert bad_url.status_code == 400
    async with server.client(server.live_key) as live:
        other_mode = await live.post("/api/billing-portal/sessions", json={"customer_id": customer["id"]})
        assert other_mode.status_code == 400

"""Customer portal sessions: a short-lived, single-use URL that lets one customer manage their
subscriptions and see their invoices, payments and refunds.

The URL carries a random token (only its SHA-256 is stored) and must be opened within
`OPEN_WITHIN` seconds; the first visit exchanges it for an HttpOnly cookie bound to that customer
and mode, valid `COOKIE_LIFETIME` seconds. A second visit of the same URL is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import objects
from paywire.billing.runtime import Call
from paywire.billing.schemas import PortalSessionCreate
from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.db.schema import billing_portal_sessions, customers
from paywire.errors import InvalidRequest, NotFound
from paywire.ids import new_id

OPEN_WITHIN = 5 * 60
COOKIE_LIFETIME = 3600


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(tx: Tx, call: Call, params: PortalSessionCreate, *, pages_url: str) -> dict[str, Any]:
    customer_id = params.customer_id or params.customer
    assert customer_id is not None
    param = "customer_id" if params.customer_id else "customer"
    try:
        await objects.fetch(tx.conn, customers, customer_id, call.livemode)
    except NotFound as exc:
        raise InvalidRequest(exc.message, param=param) from None
    if params.return_url is not None and not params.return_url.startswith(("http://", "https://")):
        raise InvalidRequest("return_url must be an http(s) URL", param="return_url")
    now = int(call.wall_now())
    token = secrets.token_urlsafe(32)
    row = {
        "id": new_id("bps"),
        "livemode": call.livemode,
        "customer_id": customer_id,
        "return_url": params.return_url,
        "locale": params.locale,
        "token_hash": digest(token),
        "expires_at": now + OPEN_WITHIN,
        "opened_at": None,
        "cookie_hash": None,
        "cookie_expires_at": None,
        "created": now,
    }
    await tx.conn.execute(billing_portal_sessions.insert().values(**row))
    return {
        "id": row["id"],
        "object": "billing_portal.session",
        "livemode": call.livemode,
        "customer_id": customer_id,
        "customer": customer_id,
        "return_url": params.return_url,
        "locale": params.locale,
        "url": f"{pages_url}/pay/portal/open/{token}",  # the token is shown only here
        "expires_at": row["expires_at"],
        "created": now,
        "created_at": iso(now),
    }


async def open_once(tx: Tx, token: str, now: float) -> tuple[str, sa.RowMapping | None, str | None]:
    """Exchange a URL's token for a cookie: ("opened", session, cookie), or ("used" | "expired" |
    "missing", session or None, None). Only the first of concurrent visits wins."""
    table = billing_portal_sessions
    row = (await tx.conn.execute(sa.select(table).where(table.c.token_hash == digest(token)))).mappings().first()
    if row is None:
        return "missing", None, None
    if row["opened_at"] is not None:
        return "used", row, None
    if now >= row["expires_at"]:
        return "expired", row, None
    cookie = secrets.token_urlsafe(32)
    opened = await tx.conn.execute(
        table.update()
        .where(table.c.id == row["id"], table.c.opened_at.is_(None))
        .values(opened_at=int(now), cookie_hash=digest(cookie), cookie_expires_at=int(now) + COOKIE_LIFETIME)
    )
    if opened.rowcount != 1:
        return "used", row, None
    return "opened", row, cookie


async def from_cookie(conn: AsyncConnection, cookie: str | None, now: float) -> sa.RowMapping | None:
    """The portal session a browser's cookie belongs to, while it lasts."""
    if not cookie:
        return None
    table = billing_portal_sessions
    row = (await conn.execute(sa.select(table).where(table.c.cookie_hash == digest(cookie)))).mappings().first()
    if row is None or row["cookie_expires_at"] is None or now >= row["cookie_expires_at"]:
        return None
    return row

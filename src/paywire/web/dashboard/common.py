"""What every dashboard page shares: the signed-in session, checked forms, keyset pages, rendering."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from paywire.db.engine import Connection
from paywire.errors import InvalidRequest
from paywire.ops import audit_log, operators
from paywire.pagination import Cursor, KeysetPage
from paywire.services import Services
from paywire.web.dashboard import auth
from paywire.web.security import check_csrf
from paywire.web.templating import render

PREFIX = "/dashboard"

NAV = (
    ("overview", "Overview", ""),
    ("events", "Events", "/events"),
    ("live", "Live", "/live"),
    ("endpoints", "Endpoints", "/endpoints"),
    ("attempts", "Attempts", "/attempts"),
    ("customers", "Customers", "/customers"),
    ("subscriptions", "Subscriptions", "/subscriptions"),
    ("invoices", "Invoices", "/invoices"),
    ("payments", "Payments", "/payments"),
    ("refunds", "Refunds", "/refunds"),
    ("test_clocks", "Test clocks", "/test-clocks"),
    ("event_types", "Event types", "/event-types"),
    ("audit", "Audit log", "/audit"),
)

# Short notices a redirect can ask the next page to show (never free text from the URL).
NOTICES = {
    "resent": "The event was queued again; its new attempt appears below once sent.",
    "created": "Created.",
    "saved": "Saved.",
    "enabled": "The endpoint is enabled; deliveries that waited go out now.",
    "disabled": "The endpoint is disabled; its deliveries wait until it is enabled again.",
    "deleted": "Deleted.",
    "test_sent": "A test event was queued to this endpoint.",
    "canceled": "The subscription was canceled.",
    "refunded": "The refund succeeded.",
    "advancing": "The test clock is advancing.",
    "mode": "Mode switched.",
}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current(request: Request) -> operators.Session:
    """The signed-in operator (a dependency of every page but sign-in); else to the sign-in page."""
    services = services_of(request)
    session = await operators.session_of(services.db, request.cookies.get(auth.SESSION_COOKIE), now=time.time())
    if session is None:
        raise auth.NotSignedIn("sign in to use the dashboard")
    request.state.session = session
    return session


@dataclass(frozen=True)
class Reading:
    """A read page's signed-in operator and the one read connection it was found on."""

    session: operators.Session
    conn: Connection


async def reading(request: Request) -> AsyncIterator[Reading]:
    """`current` for a page that reads: the session is looked up on the connection the page then
    reads on, so a page costs one pool checkout and one read transaction, not two (on SQLite a
    thread hop each for BEGIN, COMMIT and the pool's reset; on PostgreSQL a round trip each,
    plus the pool's ping). A due `last_seen` write waits until the read connection is back in
    the pool: a reader holding one connection while waiting for a second could exhaust it."""
    services = services_of(request)
    now = time.time()
    async with services.db.read() as conn:
        session, stale = await operators.find_session(conn, request.cookies.get(auth.SESSION_COOKIE), now=now)
        if session is None:
            raise auth.NotSignedIn("sign in to use the dashboard")
        request.state.session = session
        yield Reading(session, conn)
    if stale:
        await operators.touch(services.db, session, now=now)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, after its CSRF token was checked (403 without it)."""
    form = await request.form()
    check_csrf(request, form)
    return form


async def admin_form(request: Request, session: operators.Session) -> FormData:
    """The POSTed form of an admin action: CSRF checked, then the role (403 for a viewer)."""
    form = await checked_form(request)
    session.require_admin()
    return form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse_utc(value: str, param: str) -> int:
    """A `datetime-local` value (`2026-12-01T10:30`), read as UTC, as unix seconds."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{param} must be a date and time like 2026-12-01T10:30", param=param) from None
    return int(parsed.replace(tzinfo=UTC).timestamp())


def datetime_local(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M")


def redirect(path: str, notice: str | None = None) -> RedirectResponse:
    url = PREFIX + path
    if notice:
        url += ("&" if "?" in url else "?") + f"notice={notice}"
    return RedirectResponse(url, status_code=303)


async def audit_action(
    conn: Connection,
    request: Request,
    session: operators.Session,
    action: str,
    object_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await audit_log.record(
        conn,
        operator_id=session.operator_id,
        email=session.email,
        action=action,
        object_id=object_id,
        livemode=session.livemode,
        ip=client_ip(request),
        detail=detail,
        now=time.time(),
    )


def page(
    request: Request,
    session: operators.Session,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    nav: str,
    status_code: int = 200,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    values = {
        "session": session,
        "is_admin": session.is_admin,
        "livemode": session.livemode,
        "nav": NAV,
        "nav_active": nav,
        "prefix": PREFIX,
        "notice": notice,
        "error": None,
        **(context or {}),
    }
    return render(request, f"dashboard/{template}", values, status_code=status_code)


def cursor_params(
    before: int | None = Query(None, ge=0, le=2**62),
    after: int | None = Query(None, ge=0, le=2**62),
) -> Cursor:
    return Cursor(before=before, after=after)


def page_links(request: Request, result: KeysetPage) -> dict[str, str | None]:
    """The older and newer links of a keyset page: this URL with `before` or `after` set."""
    base = request.url.remove_query_params(["before", "after", "notice"])
    return {
        "older_url": str(base.include_query_params(before=result.older)) if result.older is not None else None,
        "newer_url": str(base.include_query_params(after=result.newer)) if result.newer is not None else None,
    }

"""Jinja2 for every page: autoescaped templates shipped in the package, shared filters, and
`render`, which answers a page with its security headers and CSRF cookie."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from paywire.web.security import DEFAULT_CSP, csrf_token, page_headers, set_csrf_cookie


def _utc(ts: int | float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def timestamp(ts: int | float | None) -> Markup:
    """A `<time>` element: UTC as text and on hover; `time.js` rewrites the text in the
    browser's time zone."""
    if ts is None:
        return Markup('<span class="muted">—</span>')
    moment = datetime.fromtimestamp(int(ts), UTC)
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    utc = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Digits and separators only, nothing to escape: an f-string, at half the cost of
    # `Markup.format` (a list page calls this 50 times or more).
    return Markup(f'<time datetime="{iso}" title="{utc}">{utc}</time>')


def badge(status: str | None) -> Markup:
    """A status as a coloured badge (the colour comes from the CSS class of the status)."""
    if not status:
        return Markup("")
    kind = {
        "succeeded": "ok", "paid": "ok", "active": "ok", "enabled": "ok", "complete": "ok", "ready": "ok",
        "trialing": "info", "pending": "info", "open": "info", "processing": "info", "advancing": "info",
        "draft": "muted", "paused": "muted", "void": "muted", "expired": "muted", "canceled": "muted",
        "failed": "bad", "disabled": "bad", "past_due": "warn", "incomplete": "warn",
        "requires_payment_method": "warn", "uncollectible": "bad", "incomplete_expired": "muted",
    }.get(status, "muted")  # fmt: skip
    return Markup('<span class="badge badge-{}">{}</span>').format(kind, status.replace("_", " "))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("paywire.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["timestamp"] = timestamp
    env.filters["utc"] = _utc
    env.filters["badge"] = badge
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    csp: str = DEFAULT_CSP,
) -> HTMLResponse:
    """The page `template` with `context`, plus `request` and `csrf_token` for its forms."""
    values = {"request": request, "csrf_token": csrf_token(request), **(context or {})}
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code, headers=page_headers(csp))
    set_csrf_cookie(request, response)
    return response


__all__ = ["badge", "environment", "escape", "render", "timestamp"]

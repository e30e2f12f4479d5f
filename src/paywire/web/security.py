"""Security headers for every page and static file, and CSRF tokens for every form.

CSRF: the double-submit pattern with a signed token. A page that shows a form sets the
`paywire_csrf` cookie (random, `HttpOnly`, `SameSite=Lax`) and puts the same value in the form's
hidden `csrf_token` field; a POST is refused (403) unless the two match. Browsers also send
`Origin` on POSTs: one naming another site is refused too.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from paywire.errors import PaywireError

CSRF_COOKIE = "paywire_csrf"
CSRF_FIELD = "csrf_token"

# No inline scripts or styles anywhere; pages load only what this server ships.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def csp_allowing(*, script: tuple[str, ...] = (), frame: tuple[str, ...] = (), connect: tuple[str, ...] = ()) -> str:
    """The default policy, with other origins allowed for scripts, frames and connections (a
    payment provider's script, e.g. Stripe.js). Still no inline script or style."""

    def extra(origins: tuple[str, ...]) -> str:
        return "".join(f" {origin}" for origin in origins)

    return (
        f"default-src 'self'; script-src 'self'{extra(script)}; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{extra(connect)}; frame-src 'self'{extra(frame)}; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    )


BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(self)",
}


class CsrfRefused(PaywireError):
    status = 403
    type = "invalid_request_error"
    code = "csrf_token_invalid"


def page_headers(csp: str = DEFAULT_CSP) -> dict[str, str]:
    """Headers of an HTML page: never cached (they show private data), never framed."""
    return {**BASE_HEADERS, "Content-Security-Policy": csp, "Cache-Control": "no-store"}


def is_https(request: Request) -> bool:
    """Behind a TLS-terminating proxy the scheme arrives as `X-Forwarded-Proto` (uvicorn's
    `--proxy-headers` turns it into the request's scheme)."""
    return request.url.scheme == "https"


def csrf_token(request: Request) -> str:
    """The token for this browser (made on its first page view; `set_csrf_cookie` stores it)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) != 43:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="lax", secure=is_https(request), path="/", max_age=86400 * 30
        )


def check_csrf(request: Request, form: FormData | dict[str, Any]) -> None:
    """403 unless the form's token matches this browser's cookie and the POST came from here."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise CsrfRefused("this form was sent from another site")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD) or request.headers.get("x-csrf-token") or ""
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
        raise CsrfRefused("the form's security token is missing or expired; reload the page and try again")


class StaticFilesWithHeaders(StaticFiles):
    """Static files with the same security headers as the pages, cached for an hour."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                for name, value in {**BASE_HEADERS, "Cache-Control": "public, max-age=3600"}.items():
                    headers.append((name.lower().encode(), value.encode()))
            await send(message)

        await super().__call__(scope, receive, send_with_headers)

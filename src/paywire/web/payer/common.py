"""What every payer page shares: its services, its language, its layout and error page."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from paywire.services import Services
from paywire.web.payer.i18n import Lang, choose
from paywire.web.security import DEFAULT_CSP
from paywire.web.templating import render

MOUNT = "/pay"


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def pages_url(request: Request) -> str:
    """The public base URL of the pages (the setting, else where this request came to)."""
    root = str(request.scope.get("root_path", ""))
    outer = root[: -len(MOUNT)] if root.endswith(MOUNT) else ""  # Paywire mounted under a prefix
    return services_of(request).public_url(f"{request.url.scheme}://{request.url.netloc}{outer}")


def lang_for(request: Request, locale: str | None) -> Lang:
    """The page's language: `locale` (`en`, `zh`), or for `auto`/None the browser's preference."""
    settings = services_of(request).settings
    return Lang(choose(locale, request.headers.get("accept-language"), settings.default_locale))


def page(
    request: Request,
    template: str,
    lang: Lang,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    csp: str = DEFAULT_CSP,
    livemode: bool | None = None,
) -> HTMLResponse:
    """A payer page in `lang`, with the business's name and whether it is test mode (None: not
    known, as on a page for a missing link; no test-mode banner then)."""
    values = {
        "business_name": services_of(request).settings.business_name,
        "livemode": livemode,
        "base": request.scope.get("root_path", "") or MOUNT,
        **lang.template_context(),
        **(context or {}),
    }
    return render(request, template, values, status_code=status_code, csp=csp)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    lang = lang_for(request, None)
    return page(
        request, "pay/message.html", lang,
        {"title": lang.gettext(title), "message": lang.gettext(message), "tone": "bad"}, status_code=status,
    )  # fmt: skip

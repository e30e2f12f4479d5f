"""The dashboard's FastAPI sub-application: its pages, and errors shown as pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from paywire.errors import PaywireError
from paywire.services import Services
from paywire.web.dashboard import auth, billing, endpoints, events, overview, signin
from paywire.web.dashboard.common import NAV, PREFIX
from paywire.web.templating import render


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    session = getattr(request.state, "session", None)
    context: dict[str, Any] = {
        "session": session,
        "is_admin": bool(session and session.is_admin),
        "livemode": bool(session and session.livemode),
        "nav": NAV,
        "nav_active": "",
        "prefix": PREFIX,
        "notice": None,
        "error": None,
        "status": status,
        "title": title,
        "message": message,
    }
    return render(request, "dashboard/error.html", context, status_code=status)


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Paywire dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.state.advances = {}  # test clock id -> the last advance's error, if it failed
    app.state.tasks = set()  # advances running in the background
    for module in (signin, overview, events, endpoints, billing):
        app.include_router(module.router)

    @app.exception_handler(PaywireError)
    async def paywire_error(request: Request, exc: PaywireError) -> Response:
        if isinstance(exc, auth.NotSignedIn):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method == "GET" and target.startswith(PREFIX):
                return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)
            return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 429: "Too many attempts"}
        return _error_page(request, exc.status, titles.get(exc.status, "Something is wrong"), exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return _error_page(request, 400, "Check the address", problems or "a parameter is not valid")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error_page(
            request, exc.status_code, "Not found" if exc.status_code == 404 else "Error", str(exc.detail)
        )

    return app

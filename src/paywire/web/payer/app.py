"""The payer's pages, a sub-application mounted at `/pay`: hosted checkout, payment links and the
customer portal. Every page is server-rendered and works without JavaScript; the scripts only
format and check fields before a form is sent."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from paywire.errors import PaywireError
from paywire.services import Services
from paywire.web.payer import checkout_routes, links, portal
from paywire.web.payer.common import MOUNT, error_page
from paywire.web.payer.i18n import N_
from paywire.web.security import CsrfRefused

__all__ = ["MOUNT", "create_app"]


def create_app(services: Services) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(checkout_routes.router)
    app.include_router(links.router)
    app.include_router(portal.router)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        return error_page(
            request, 403, N_("This form has expired"), N_("Reload the page and try again. Nothing was charged.")
        )

    @app.exception_handler(PaywireError)
    async def paywire_error(request: Request, exc: PaywireError) -> Response:
        if exc.status == 404:
            return error_page(request, 404, N_("Page not found"), N_("This link is not valid. Check the address."))
        return error_page(request, exc.status, N_("Something went wrong"), N_("Please try again."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, N_("Page not found"), N_("This link is not valid. Check the address."))
        return error_page(request, exc.status_code, N_("Something went wrong"), N_("Please try again."))

    return app

"""The pages: one web layer (templates, static files, security headers, CSRF) for the operator
dashboard and the payer's pages (checkout, payment links, customer portal).

Server-rendered with Jinja2; static files ship inside the package and are served from
`/assets/`; nothing is fetched from a CDN. Each area is a FastAPI sub-application handed the
engine's `Services`, mounted by `mount` on the root application.
"""

from __future__ import annotations

from fastapi import FastAPI

from paywire.services import Services
from paywire.web import dashboard, payer
from paywire.web.security import StaticFilesWithHeaders

ASSETS_PATH = "/assets"


def mount(api: FastAPI, services: Services) -> None:
    """Serve the static files and every page area on `api`."""
    api.mount(ASSETS_PATH, StaticFilesWithHeaders(packages=[("paywire.web", "static")]), name="assets")
    api.mount(payer.MOUNT, payer.create_app(services), name="pay")
    api.mount("/dashboard", dashboard.create_app(services))

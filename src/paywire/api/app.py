"""The FastAPI application for one `PaywireApp`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from paywire import __version__
from paywire.api import errors, openapi
from paywire.api.middleware import PaywireMiddleware
from paywire.api.routes import (
    attempts,
    checkout,
    customers,
    endpoints,
    events,
    invoices,
    payments,
    products,
    refunds,
    subscriptions,
    test_clocks,
)
from paywire.app import PaywireApp

ROUTERS = [
    customers.router,
    products.router,
    endpoints.router,
    events.router,
    events.consumers,
    attempts.router,
    checkout.router,
    subscriptions.router,
    invoices.router,
    payments.router,
    refunds.router,
    test_clocks.router,
]


def create_api(paywire: PaywireApp) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with paywire.running():
            yield

    api = FastAPI(
        title="Paywire",
        version=__version__,
        description="Self-hosted Payment Kit: billing whose every state change is a typed, persisted event.",
        lifespan=lifespan,
    )
    api.state.paywire = paywire
    errors.install(api)
    for router in ROUTERS:
        api.include_router(router)

    @api.get("/healthz", tags=["meta"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    api.add_middleware(PaywireMiddleware, paywire=paywire)
    openapi.install(api)
    return api

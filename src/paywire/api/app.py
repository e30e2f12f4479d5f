"""The FastAPI application, built from the services the composition root hands it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from paywire import __version__, web
from paywire.api import errors, openapi
from paywire.api.middleware import PaywireMiddleware
from paywire.api.routes import (
    attempts,
    billing_portal,
    checkout,
    clocks,
    customers,
    endpoints,
    event_destinations,
    events,
    invoices,
    payment_links,
    payments,
    products,
    refunds,
    stripe_webhooks,
    subscriptions,
)
from paywire.ops import routes as ops_routes
from paywire.ops.metrics import RequestMetrics
from paywire.services import Services

ROUTERS = [
    customers.router,
    products.router,
    endpoints.router,
    event_destinations.router,
    events.router,
    events.consumers,
    attempts.router,
    checkout.router,
    subscriptions.router,
    invoices.router,
    payments.router,
    refunds.router,
    clocks.router,
    payment_links.router,
    billing_portal.router,
    stripe_webhooks.router,
]


def create_api(services: Services, running: Callable[[], AbstractAsyncContextManager[Any]]) -> FastAPI:
    """`running` starts and stops the engine around the server's lifespan."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with running():
            yield

    api = FastAPI(
        title="Paywire",
        version=__version__,
        description="Self-hosted Payment Kit: billing whose every state change is a typed, persisted event.",
        lifespan=lifespan,
    )
    api.state.services = services
    errors.install(api)
    for router in ROUTERS:
        api.include_router(router)

    api.include_router(ops_routes.router)
    web.mount(api, services)
    api.add_middleware(PaywireMiddleware, services=services)
    api.add_middleware(RequestMetrics)
    openapi.install(api)
    return api

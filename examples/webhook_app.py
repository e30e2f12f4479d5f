"""Payment Kit's first pattern, webhooks: a FastAPI app that registers its own callback at start-up.

    PAYWIRE_URL=http://localhost:8800 PAYWIRE_API_KEY=sk_test_… APP_URL=http://localhost:8000 \
        uvicorn examples.webhook_app:app --port 8000

At start-up `ensure_webhooks()` updates the first webhook endpoint (or creates one) so that it
points at this app's `/api/payment/callback` with the two subscription events, then reads its
signing secret. The callback verifies every request's signature and dispatches on `event.type`.
Each handler prints one line, `handled <type> <event id>`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from paywire import AsyncPaywire, Event
from paywire.webhooks.fastapi import webhook_event

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("webhook_app")
ENABLED_EVENTS = ["customer.subscription.started", "customer.subscription.renewed"]
signing_secret = ""  # set at start-up, from the endpoint


def get_url(path: str) -> str:
    """This app's public address (where Paywire can reach it), plus `path`."""
    return os.environ.get("APP_URL", "http://localhost:8000").rstrip("/") + path


async def ensure_webhooks(payment: AsyncPaywire) -> str:
    """Payment Kit's ensureWebhooks: update the first endpoint, or create one. Returns its id."""
    result = await payment.webhook_endpoints.list(page=1, size=100)
    if result.list:
        webhook = await payment.webhook_endpoints.update(
            result.list[0].id, url=get_url("/api/payment/callback"), enabled_events=ENABLED_EVENTS
        )
        logger.info("webhooks updated %s", webhook.id)
        return webhook.id
    created = await payment.webhook_endpoints.create(
        url=get_url("/api/payment/callback"), enabled_events=ENABLED_EVENTS
    )
    logger.info("webhooks created %s", created.id)
    return created.id


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global signing_secret
    async with AsyncPaywire() as payment:  # PAYWIRE_API_KEY, PAYWIRE_URL
        endpoint_id = await ensure_webhooks(payment)
        signing_secret = (await payment.webhook_endpoints.secret(endpoint_id)).secret
    yield


app = FastAPI(lifespan=lifespan)


async def handle_subscription_start(event: Event) -> None:
    print(f"handled {event.type} {event.id}", flush=True)  # e.g. grant access to the plan


async def handle_subscription_renew(event: Event) -> None:
    print(f"handled {event.type} {event.id}", flush=True)  # e.g. extend access by a period


# `webhook_event` is Payment Kit's verifySig: a bad or missing signature answers 400 before the
# handler runs. Delivery is at least once; a real app de-duplicates on `event.id` (this one
# does not, so that a test can see any double delivery).
@app.post("/api/payment/callback")
async def payment_callback(event: Event = Depends(webhook_event(lambda: signing_secret))) -> dict[str, bool]:
    match event.type:
        case "customer.subscription.started":
            await handle_subscription_start(event)
        case "customer.subscription.renewed":
            await handle_subscription_renew(event)
    return {"received": True}

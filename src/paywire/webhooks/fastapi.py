"""FastAPI dependency: `event: Event = Depends(webhook_event(SECRET))`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from paywire.events.event import Event
from paywire.webhooks.verify import (
    DEFAULT_TOLERANCE,
    SecretSource,
    WebhookVerificationError,
    secret_getter,
    verify,
)


def webhook_event(secret: SecretSource, *, tolerance: int = DEFAULT_TOLERANCE) -> Callable[[Request], Awaitable[Event]]:
    """Return a dependency that verifies the raw request and yields its Event, or answers 400."""
    get_secret = secret_getter(secret)

    async def paywire_webhook_event(request: Request) -> Event:
        body = await request.body()
        try:
            return verify(body, request.headers, get_secret(), tolerance=tolerance)
        except WebhookVerificationError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    return paywire_webhook_event

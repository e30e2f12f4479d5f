"""`/api/event-destinations`: destinations of every type (webhook, rabbitmq, nats, redis).

`/api/webhook-endpoints` stays the view of the webhook type. Attempts are listed by
`/api/webhook-attempts?webhook_endpoint_id=<destination id>`, resends by `/api/events/{id}/resend`
with `webhook_endpoint_id`, for every type.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.db.schema import webhook_endpoints as table
from paywire.destinations import store
from paywire.pagination import Page, paginate
from paywire.schemas import (
    EndpointRecover,
    EventDestination,
    EventDestinationCreate,
    EventDestinationRecoverResult,
    EventDestinationUpdate,
    EventDestinationWithSecret,
    ListResponse,
    RotateSecret,
    Secret,
)
from paywire.webhooks import endpoints, netpolicy

router = APIRouter(prefix="/api/event-destinations", tags=["event destinations"])


@router.post("", response_model=EventDestinationWithSecret)
async def create_destination(body: EventDestinationCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    url = body.config.get("url")
    if body.type == "webhook" and isinstance(url, str):
        allow_private = ctx.services.settings.allow_private_networks
        await netpolicy.check_endpoint_url(url, livemode=ctx.livemode, allow_private=allow_private)  # DNS first
    async with ctx.db.transaction() as tx:
        return await store.create(tx, body, livemode=ctx.livemode, now=ctx.now())


@router.get("", response_model=ListResponse[EventDestination])
async def list_destinations(
    type: str | None = None, page: Page = Depends(page_params), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    keyring = ctx.db.keyring
    async with ctx.db.read() as conn:
        return await paginate(
            conn, store.listing(ctx.livemode, type=type), table.c.seq, page, lambda m: store.render(m, keyring)
        )


@router.get("/{destination_id}", response_model=EventDestination)
async def retrieve_destination(destination_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return store.render(await store.fetch(conn, destination_id, ctx.livemode), ctx.db.keyring)


@router.put("/{destination_id}", response_model=EventDestination)
async def update_destination(
    destination_id: str, body: EventDestinationUpdate, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    url = (body.config or {}).get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):  # a webhook's new URL
        allow_private = ctx.services.settings.allow_private_networks
        await netpolicy.check_endpoint_url(url, livemode=ctx.livemode, allow_private=allow_private)
    async with ctx.db.transaction() as tx:
        tx.after_commit.append(ctx.db.signal.notify)  # re-enabled: its waiting deliveries are due
        return await store.update(tx, destination_id, body, livemode=ctx.livemode, now=ctx.now())


@router.delete("/{destination_id}")
async def delete_destination(destination_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await store.delete(tx, destination_id, livemode=ctx.livemode, now=ctx.now())


@router.get("/{destination_id}/secret", response_model=Secret)
async def destination_secret(destination_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        secret = await endpoints.secret(conn, ctx.db.keyring, destination_id, livemode=ctx.livemode, kind=None)
        return {"secret": secret}


@router.post("/{destination_id}/rotate-secret", response_model=Secret)
async def rotate_destination_secret(
    destination_id: str, body: RotateSecret | None = Body(None), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    expires_in = (body or RotateSecret()).expires_in
    async with ctx.db.transaction() as tx:
        return await endpoints.rotate_secret(
            tx, destination_id, expires_in=expires_in, livemode=ctx.livemode, now=ctx.now(), kind=None
        )


@router.post("/{destination_id}/recover", response_model=EventDestinationRecoverResult)
async def recover_destination(
    destination_id: str, body: EndpointRecover, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    """Re-queue every delivery to this destination that failed for good since `since` (unix seconds)."""
    async with ctx.db.transaction() as tx:
        requeued = await endpoints.recover_endpoint(
            tx, destination_id, livemode=ctx.livemode, since=body.since, now=ctx.now(), kind=None
        )
        tx.after_commit.append(ctx.db.signal.notify)
    return {
        "object": "event_destination_recovery",
        "event_destination_id": destination_id,
        "since": body.since,
        "requeued": requeued,
    }

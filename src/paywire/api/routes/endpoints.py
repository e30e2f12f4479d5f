from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.db.schema import webhook_endpoints as table
from paywire.pagination import Page, paginate
from paywire.schemas import (
    EndpointRecover,
    EndpointRecoverResult,
    ListResponse,
    RotateSecret,
    Secret,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from paywire.webhooks import endpoints, netpolicy

router = APIRouter(prefix="/api/webhook-endpoints", tags=["webhook endpoints"])


@router.post("", response_model=WebhookEndpointWithSecret)
async def create_endpoint(body: WebhookEndpointCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    allow_private = ctx.services.settings.allow_private_networks
    await netpolicy.check_endpoint_url(body.url, livemode=ctx.livemode, allow_private=allow_private)  # DNS first
    async with ctx.db.transaction() as tx:
        return await endpoints.create(tx, body, livemode=ctx.livemode, now=ctx.now())


@router.get("", response_model=ListResponse[WebhookEndpoint])
async def list_endpoints(page: Page = Depends(page_params), ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await paginate(conn, endpoints.listing(ctx.livemode), table.c.seq, page, endpoints.render)


@router.get("/{endpoint_id}", response_model=WebhookEndpoint)
async def retrieve_endpoint(endpoint_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return endpoints.render(await endpoints.fetch(conn, endpoint_id, ctx.livemode))


@router.put("/{endpoint_id}", response_model=WebhookEndpoint)
async def update_endpoint(endpoint_id: str, body: WebhookEndpointUpdate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    if body.url:
        allow_private = ctx.services.settings.allow_private_networks
        await netpolicy.check_endpoint_url(body.url, livemode=ctx.livemode, allow_private=allow_private)
    async with ctx.db.transaction() as tx:
        tx.after_commit.append(ctx.db.signal.notify)  # re-enabled: its waiting deliveries are due
        return await endpoints.update(tx, endpoint_id, body, livemode=ctx.livemode, now=ctx.now())


@router.delete("/{endpoint_id}")
async def delete_endpoint(endpoint_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await endpoints.delete(tx, endpoint_id, livemode=ctx.livemode, now=ctx.now())


@router.get("/{endpoint_id}/secret", response_model=Secret)
async def endpoint_secret(endpoint_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return {"secret": await endpoints.secret(conn, ctx.db.keyring, endpoint_id, livemode=ctx.livemode)}


@router.post("/{endpoint_id}/rotate-secret", response_model=Secret)
async def rotate_endpoint_secret(
    endpoint_id: str, body: RotateSecret | None = Body(None), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    expires_in = (body or RotateSecret()).expires_in
    async with ctx.db.transaction() as tx:
        return await endpoints.rotate_secret(
            tx, endpoint_id, expires_in=expires_in, livemode=ctx.livemode, now=ctx.now()
        )


@router.post("/{endpoint_id}/recover", response_model=EndpointRecoverResult)
async def recover_endpoint(endpoint_id: str, body: EndpointRecover, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Re-queue every delivery to this endpoint that failed for good since `since` (unix seconds)."""
    async with ctx.db.transaction() as tx:
        requeued = await endpoints.recover_endpoint(
            tx, endpoint_id, livemode=ctx.livemode, since=body.since, now=ctx.now()
        )
        tx.after_commit.append(ctx.db.signal.notify)
    return {
        "object": "webhook_endpoint_recovery",
        "webhook_endpoint_id": endpoint_id,
        "since": body.since,
        "requeued": requeued,
    }

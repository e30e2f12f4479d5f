from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import flows, subscriptions
from paywire.billing.schemas import Subscription, SubscriptionCancel, SubscriptionCreate, SubscriptionUpdate
from paywire.db.schema import subscriptions as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/subscriptions", tags=["subscriptions"])


@router.post("", response_model=Subscription)
async def create_subscription(body: SubscriptionCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    return await flows.create_subscription(ctx.db, ctx.call(), body)


@router.get("", response_model=ListResponse[Subscription])
async def list_subscriptions(
    customer_id: str | None = None,
    status: str | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = subscriptions.listing(ctx.livemode, customer_id=customer_id, status=status)
        return await paginate(conn, query, table.c.seq, page, subscriptions.render)


@router.get("/{subscription_id}", response_model=Subscription)
async def retrieve_subscription(subscription_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return subscriptions.render(await objects.fetch(conn, table, subscription_id, ctx.livemode))


@router.put("/{subscription_id}", response_model=Subscription)
async def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    """Change items (prorated to the second), payment method, `cancel_at_period_end`, metadata.
    An upgrade whose proration is declined answers 402 and changes nothing."""
    outcome = await flows.update_subscription(ctx.db, ctx.call(), subscription_id, body)
    return outcome.unwrap()


@router.post("/{subscription_id}/cancel", response_model=Subscription)
async def cancel_subscription(
    subscription_id: str, body: SubscriptionCancel | None = None, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    at_period_end = body.at_period_end if body is not None else False
    async with ctx.db.transaction() as tx:
        call = ctx.call()
        return await subscriptions.cancel(tx, call, subscription_id, at_period_end=at_period_end)


@router.post("/{subscription_id}/pause", response_model=Subscription)
async def pause_subscription(subscription_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await subscriptions.pause(tx, ctx.call(), subscription_id)


@router.post("/{subscription_id}/resume", response_model=Subscription)
async def resume_subscription(subscription_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    return await flows.resume_subscription(ctx.db, ctx.call(), subscription_id)

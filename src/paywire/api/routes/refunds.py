from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import refunds
from paywire.billing.schemas import Refund, RefundCreate
from paywire.db.schema import refunds as table
from paywire.errors import InvalidRequest, NotFound
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/refunds", tags=["refunds"])


@router.post("", response_model=Refund)
async def create_refund(body: RefundCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    try:
        return await refunds.refund(ctx.db, ctx.call(), body.payment_intent_id, body)
    except NotFound as exc:
        raise InvalidRequest(exc.message, param="payment_intent_id") from None


@router.get("", response_model=ListResponse[Refund])
async def list_refunds(
    payment_intent_id: str | None = None, page: Page = Depends(page_params), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = refunds.listing(ctx.livemode, payment_intent_id=payment_intent_id)
        return await paginate(conn, query, table.c.seq, page, refunds.render)


@router.get("/{refund_id}", response_model=Refund)
async def retrieve_refund(refund_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return refunds.render(await objects.fetch(conn, table, refund_id, ctx.livemode))

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import payments, refunds
from paywire.billing.schemas import PaymentIntent, PaymentIntentRefund, Refund
from paywire.db.schema import payment_intents as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/payment-intents", tags=["payment intents"])


@router.get("", response_model=ListResponse[PaymentIntent])
async def list_payment_intents(
    customer_id: str | None = None,
    status: str | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = payments.listing(ctx.livemode, customer_id=customer_id, status=status)
        return await paginate(conn, query, table.c.seq, page, payments.render)


@router.get("/{payment_intent_id}", response_model=PaymentIntent)
async def retrieve_payment_intent(payment_intent_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return payments.render(await objects.fetch(conn, table, payment_intent_id, ctx.livemode))


@router.post("/{payment_intent_id}/refund", response_model=Refund)
async def refund_payment_intent(
    payment_intent_id: str, body: PaymentIntentRefund | None = None, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    """Refund all that remains (no `amount`) or part of it; never more than was paid."""
    return await refunds.refund(ctx.db, ctx.call(), payment_intent_id, body or PaymentIntentRefund())

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import flows, invoices
from paywire.billing.schemas import Invoice, InvoicePay
from paywire.db.schema import invoices as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/invoices", tags=["invoices"])


@router.get("", response_model=ListResponse[Invoice])
async def list_invoices(
    customer_id: str | None = None,
    subscription_id: str | None = None,
    status: str | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = invoices.listing(ctx.livemode, customer_id=customer_id, subscription_id=subscription_id, status=status)
        return await paginate(conn, query, table.c.seq, page, invoices.render)


@router.get("/{invoice_id}", response_model=Invoice)
async def retrieve_invoice(invoice_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return invoices.render(await objects.fetch(conn, table, invoice_id, ctx.livemode))


@router.post("/{invoice_id}/pay", response_model=Invoice)
async def pay_invoice(invoice_id: str, body: InvoicePay | None = None, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Charge an open invoice now; a decline answers 402 after recording the failed payment."""
    payment_method = body.payment_method if body is not None else None
    outcome = await flows.pay_invoice(ctx.db, ctx.call(), invoice_id, payment_method)
    return outcome.unwrap()

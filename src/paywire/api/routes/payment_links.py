"""`/api/payment-links`: reusable URLs that start a hosted checkout on every visit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import payment_links
from paywire.billing.schemas import PaymentLink, PaymentLinkCreate, PaymentLinkUpdate
from paywire.db.schema import payment_links as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/payment-links", tags=["payment links"])


@router.post("", response_model=PaymentLink)
async def create_link(body: PaymentLinkCreate, request: Request, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """A link whose `url` sells `line_items`: each visit starts a checkout session."""
    pages_url = ctx.services.public_url(str(request.base_url))
    async with ctx.db.transaction() as tx:
        return await payment_links.create(tx, ctx.call(), body, pages_url=pages_url)


@router.get("", response_model=ListResponse[PaymentLink])
async def list_links(
    active: bool | None = None, page: Page = Depends(page_params), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await paginate(conn, payment_links.listing(ctx.livemode, active=active), table.c.seq, page,
                              payment_links.render)  # fmt: skip


@router.get("/{link_id}", response_model=PaymentLink)
async def retrieve_link(link_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return payment_links.render(await objects.fetch(conn, table, link_id, ctx.livemode))


@router.put("/{link_id}", response_model=PaymentLink)
async def update_link(link_id: str, body: PaymentLinkUpdate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Change a link; `active: false` deactivates it (its page then sells nothing)."""
    async with ctx.db.transaction() as tx:
        return await payment_links.update(tx, ctx.call(), link_id, body)

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import customers
from paywire.db.schema import customers as table
from paywire.pagination import Page, paginate
from paywire.schemas import Customer, CustomerCreate, CustomerUpdate, ListResponse

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.post("", response_model=Customer)
async def create_customer(body: CustomerCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await customers.create(tx, ctx.call(), body)


@router.get("", response_model=ListResponse[Customer])
async def list_customers(
    email: str | None = None, page: Page = Depends(page_params), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await paginate(conn, customers.listing(ctx.livemode, email=email), table.c.seq, page, customers.render)


@router.get("/{customer_id}", response_model=Customer)
async def retrieve_customer(customer_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return customers.render(await objects.fetch(conn, table, customer_id, ctx.livemode))


@router.put("/{customer_id}", response_model=Customer)
async def update_customer(customer_id: str, body: CustomerUpdate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await customers.update(tx, ctx.call(), customer_id, body)

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import products
from paywire.db.schema import prices as prices_table
from paywire.db.schema import products as products_table
from paywire.pagination import Page, paginate
from paywire.schemas import (
    ListResponse,
    Price,
    PriceCreate,
    PriceUpdate,
    Product,
    ProductCreate,
    ProductUpdate,
)

router = APIRouter(tags=["products"])


@router.post("/api/products", response_model=Product)
async def create_product(body: ProductCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await products.create_product(tx, ctx.call(), body)


@router.get("/api/products", response_model=ListResponse[Product])
async def list_products(
    active: bool | None = None, page: Page = Depends(page_params), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = products.product_listing(ctx.livemode, active=active)
        return await paginate(conn, query, products_table.c.seq, page, products.render_product)


@router.get("/api/products/{product_id}", response_model=Product)
async def retrieve_product(product_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return products.render_product(await objects.fetch(conn, products_table, product_id, ctx.livemode))


@router.put("/api/products/{product_id}", response_model=Product)
async def update_product(product_id: str, body: ProductUpdate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await products.update_product(tx, ctx.call(), product_id, body)


@router.post("/api/prices", response_model=Price, tags=["prices"])
async def create_price(body: PriceCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await products.create_price(tx, ctx.call(), body)


@router.get("/api/prices", response_model=ListResponse[Price], tags=["prices"])
async def list_prices(
    product_id: str | None = None,
    active: bool | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = products.price_listing(ctx.livemode, product_id=product_id, active=active)
        return await paginate(conn, query, prices_table.c.seq, page, products.render_price)


@router.get("/api/prices/{price_id}", response_model=Price, tags=["prices"])
async def retrieve_price(price_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return products.render_price(await objects.fetch(conn, prices_table, price_id, ctx.livemode))


@router.put("/api/prices/{price_id}", response_model=Price, tags=["prices"])
async def update_price(price_id: str, body: PriceUpdate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await products.update_price(tx, ctx.call(), price_id, body)

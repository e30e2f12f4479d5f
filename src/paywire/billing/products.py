"""Products and their prices. A price's amount and interval never change once created (as in
Stripe): a new amount is a new price, so invoices always point at what was charged."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import money, periods
from paywire.billing.runtime import Call
from paywire.db.engine import Tx
from paywire.db.schema import prices, products
from paywire.errors import InvalidRequest
from paywire.ids import new_id
from paywire.schemas import PriceCreate, PriceUpdate, ProductCreate, ProductUpdate


def render_product(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "product"),
        "name": m["name"],
        "description": m["description"],
        "active": m["active"],
    }


def render_price(m: Any) -> dict[str, Any]:
    recurring = (
        {"interval": m["recurring_interval"], "interval_count": m["recurring_interval_count"]}
        if m["type"] == "recurring"
        else None
    )
    return {
        **objects.common_fields(m, "price"),
        "product_id": m["product_id"],
        "unit_amount": money.format_amount(m["unit_amount"], m["currency"]),
        "currency": m["currency"],
        "type": m["type"],
        "recurring": recurring,
        "trial_period_days": m["trial_period_days"],
        "nickname": m["nickname"],
        "active": m["active"],
    }


async def create_product(tx: Tx, call: Call, params: ProductCreate) -> dict[str, Any]:
    now = call.wall_now()  # a product has no test clock
    row = {
        "id": new_id("prod"),
        "livemode": call.livemode,
        "name": params.name,
        "description": params.description,
        "active": params.active,
        "metadata": params.metadata or {},
        "created": int(now),
        "updated": int(now),
    }
    return await objects.create_object(
        tx,
        call,
        products,
        row,
        render=render_product,
        event_type="product.created",
        now=now,
    )


async def update_product(tx: Tx, call: Call, product_id: str, params: ProductUpdate) -> dict[str, Any]:
    return await objects.update_object(
        tx,
        call,
        products,
        product_id,
        params.model_dump(exclude_unset=True, exclude_none=True),
        render=render_product,
        event_type="product.updated",
        now=call.wall_now(),
    )


def _price_values(params: PriceCreate) -> dict[str, Any]:
    """Validate amount, currency and recurrence together; each problem names its field."""
    try:
        currency = money.validate_currency(params.currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="currency") from None
    try:
        unit_amount = money.parse_amount(params.unit_amount, currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="unit_amount") from None
    kind = params.type or ("recurring" if params.recurring else "one_time")
    if kind == "recurring" and params.recurring is None:
        raise InvalidRequest("a recurring price needs recurring.interval", param="recurring")
    if kind == "one_time" and params.recurring is not None:
        raise InvalidRequest("a one_time price cannot have recurring", param="recurring")
    if kind == "one_time" and params.trial_period_days is not None:
        raise InvalidRequest("trial_period_days needs a recurring price", param="trial_period_days")
    if params.recurring is not None:
        try:
            periods.validate_interval(params.recurring.interval, params.recurring.interval_count)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="recurring.interval_count") from None
    return {
        "unit_amount": unit_amount,
        "currency": currency,
        "type": kind,
        "recurring_interval": params.recurring.interval if params.recurring else None,
        "recurring_interval_count": params.recurring.interval_count if params.recurring else None,
    }


async def create_price(tx: Tx, call: Call, params: PriceCreate) -> dict[str, Any]:
    values = _price_values(params)
    product = await objects.fetch(tx.conn, products, params.product_id, call.livemode)
    now = call.wall_now()
    row = {
        "id": new_id("price"),
        "livemode": call.livemode,
        "product_id": product["id"],
        **values,
        "trial_period_days": params.trial_period_days,
        "nickname": params.nickname,
        "active": True,
        "metadata": params.metadata or {},
        "created": int(now),
        "updated": int(now),
    }
    return await objects.create_object(
        tx,
        call,
        prices,
        row,
        render=render_price,
        event_type="price.created",
        now=now,
    )


async def update_price(tx: Tx, call: Call, price_id: str, params: PriceUpdate) -> dict[str, Any]:
    values = params.model_dump(exclude_unset=True)
    if values.get("active") is None:
        values.pop("active", None)
    return await objects.update_object(
        tx,
        call,
        prices,
        price_id,
        values,
        render=render_price,
        event_type="price.updated",
        now=call.wall_now(),
    )


def product_listing(livemode: bool, *, active: bool | None = None) -> sa.Select[Any]:
    query = sa.select(products).where(products.c.livemode == livemode)
    return query if active is None else query.where(products.c.active == active)


def price_listing(livemode: bool, *, product_id: str | None = None, active: bool | None = None) -> sa.Select[Any]:
    query = sa.select(prices).where(prices.c.livemode == livemode)
    if product_id:
        query = query.where(prices.c.product_id == product_id)
    return query if active is None else query.where(prices.c.active == active)

"""Customers: create and update, each emitting its event in the same transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing.clocks import check_clock
from paywire.db.engine import Tx
from paywire.db.schema import customers, test_clocks
from paywire.events.log import RequestInfo
from paywire.ids import new_id
from paywire.schemas import CustomerCreate, CustomerUpdate


def render(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "customer"),
        "email": m["email"],
        "name": m["name"],
        "description": m["description"],
        "test_clock_id": m["test_clock_id"],
    }


async def create(
    tx: Tx, params: CustomerCreate, *, livemode: bool, now: float, request: RequestInfo | None = None
) -> dict[str, Any]:
    if params.test_clock_id is not None:
        # A customer on a test clock reads time from it, from its creation on.
        await check_clock(tx.conn, params.test_clock_id, livemode, "test_clock_id")
        frozen = await tx.conn.scalar(
            sa.select(test_clocks.c.frozen_time).where(test_clocks.c.id == params.test_clock_id)
        )
        now = float(frozen or 0)
    row = {
        "id": new_id("cus"),
        "livemode": livemode,
        "email": params.email,
        "name": params.name,
        "description": params.description,
        "metadata": params.metadata or {},
        "test_clock_id": params.test_clock_id,
        "created": int(now),
        "updated": int(now),
    }
    return await objects.create_object(
        tx, customers, row, render=render, event_type="customer.created", livemode=livemode, now=now, request=request
    )


async def update(
    tx: Tx,
    customer_id: str,
    params: CustomerUpdate,
    *,
    livemode: bool,
    now: float,
    request: RequestInfo | None = None,
) -> dict[str, Any]:
    return await objects.update_object(
        tx,
        customers,
        customer_id,
        params.model_dump(exclude_unset=True),
        render=render,
        event_type="customer.updated",
        livemode=livemode,
        now=now,
        request=request,
    )


def listing(livemode: bool, *, email: str | None = None) -> sa.Select[Any]:
    query = sa.select(customers).where(customers.c.livemode == livemode)
    if email:
        query = query.where(customers.c.email == email)
    return query

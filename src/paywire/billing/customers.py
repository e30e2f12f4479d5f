"""Customers: create and update, each emitting its event in the same transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing.clocks import check_clock, now_for
from paywire.billing.runtime import Call
from paywire.db.engine import Tx
from paywire.db.schema import customers
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


async def create(tx: Tx, call: Call, params: CustomerCreate) -> dict[str, Any]:
    if params.test_clock_id is not None:
        await check_clock(tx.conn, params.test_clock_id, call.livemode, "test_clock_id")
    # A customer on a test clock reads time from it, from its creation on.
    return await insert(tx, call, params, await now_for(tx.conn, call, params.test_clock_id))


async def insert(tx: Tx, call: Call, params: CustomerCreate, now: float) -> dict[str, Any]:
    """Create at `now`: a flow's time (a checkout on a test clock creates its customer at the clock's time)."""
    row = {
        "id": new_id("cus"),
        "livemode": call.livemode,
        "email": params.email,
        "name": params.name,
        "description": params.description,
        "metadata": params.metadata or {},
        "test_clock_id": params.test_clock_id,
        "created": int(now),
        "updated": int(now),
    }
    return await objects.create_object(
        tx,
        call,
        customers,
        row,
        render=render,
        event_type="customer.created",
        now=now,
    )


async def update(tx: Tx, call: Call, customer_id: str, params: CustomerUpdate) -> dict[str, Any]:
    return await objects.update_object(
        tx,
        call,
        customers,
        customer_id,
        params.model_dump(exclude_unset=True),
        render=render,
        event_type="customer.updated",
        now=call.wall_now(),
    )


def listing(livemode: bool, *, email: str | None = None) -> sa.Select[Any]:
    query = sa.select(customers).where(customers.c.livemode == livemode)
    if email:
        query = query.where(customers.c.email == email)
    return query

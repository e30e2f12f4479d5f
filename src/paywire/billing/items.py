"""Prices and quantities: validating line items and pricing them.

A subscription item is stored as {id, price_id, quantity, unit_amount, currency}: a price's
amount never changes, so the snapshot is exact and renewals need no price lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.billing import money
from paywire.db.schema import prices
from paywire.errors import InvalidRequest
from paywire.ids import new_id

MAX_ITEMS = 20


@dataclass(frozen=True)
class PricedItem:
    price: sa.RowMapping
    quantity: int

    @property
    def amount(self) -> int:
        return int(self.price["unit_amount"]) * self.quantity


@dataclass(frozen=True)
class Recurrence:
    currency: str
    interval: str
    interval_count: int
    trial_period_days: int | None


async def price_items(
    conn: AsyncConnection, wanted: list[tuple[str, int]], livemode: bool, param: str
) -> list[PricedItem]:
    """Look up (price_id, quantity) pairs: every price must exist, be active and appear once."""
    if not 1 <= len(wanted) <= MAX_ITEMS:
        raise InvalidRequest(f"{param} must have 1 to {MAX_ITEMS} entries", param=param)
    ids = [price_id for price_id, _ in wanted]
    if len(set(ids)) != len(ids):
        raise InvalidRequest(f"{param} lists a price more than once", param=param)
    rows = (
        (await conn.execute(sa.select(prices).where(prices.c.id.in_(ids), prices.c.livemode == livemode)))
        .mappings()
        .all()
    )
    by_id = {row["id"]: row for row in rows}
    result = []
    for index, (price_id, quantity) in enumerate(wanted):
        row = by_id.get(price_id)
        if row is None:
            raise InvalidRequest(f"no such price: {price_id!r}", param=f"{param}.{index}.price_id")
        if not row["active"]:
            raise InvalidRequest(f"price {price_id!r} is not active", param=f"{param}.{index}.price_id")
        result.append(PricedItem(row, quantity))
    currencies = {item.price["currency"] for item in result}
    if len(currencies) > 1:
        raise InvalidRequest(f"all prices must share one currency, got {sorted(currencies)}", param=param)
    return result


def recurrence(items: list[PricedItem], param: str) -> Recurrence:
    """The shared currency and interval of recurring items (a subscription bills them together)."""
    for index, item in enumerate(items):
        if item.price["type"] != "recurring":
            raise InvalidRequest(
                f"price {item.price['id']!r} is one_time; subscriptions need recurring prices",
                param=f"{param}.{index}.price_id",
            )
    intervals = {(i.price["recurring_interval"], i.price["recurring_interval_count"]) for i in items}
    if len(intervals) > 1:
        raise InvalidRequest("all prices of a subscription must share one billing interval", param=param)
    interval, count = intervals.pop()
    trials = [i.price["trial_period_days"] for i in items if i.price["trial_period_days"]]
    return Recurrence(items[0].price["currency"], interval, count, max(trials) if trials else None)


def subscription_items(
    items: list[PricedItem], existing: list[dict[str, Any]] | None = None, ids: list[str | None] | None = None
) -> list[dict[str, Any]]:
    """Stored items. An item keeps its `si_` id when named by `ids`, when its price was already
    on the subscription, or when it replaces the item at the same position."""
    existing = existing or []
    known = {item["id"] for item in existing}
    by_price = {item["price_id"]: item["id"] for item in existing}
    wanted = ids or [None] * len(items)
    for item_id in wanted:
        if item_id is not None and item_id not in known:
            raise InvalidRequest(f"no such subscription item: {item_id!r}", param="items")
    used = {item_id for item_id in wanted if item_id} | {
        by_price[i.price["id"]] for i in items if i.price["id"] in by_price
    }
    result = []
    for index, item in enumerate(items):
        item_id = wanted[index] or by_price.get(item.price["id"])
        if item_id is None and index < len(existing) and existing[index]["id"] not in used:
            item_id = existing[index]["id"]
            used.add(item_id)
        result.append(
            {
                "id": item_id or new_id("si"),
                "price_id": item.price["id"],
                "quantity": item.quantity,
                "unit_amount": int(item.price["unit_amount"]),
                "currency": item.price["currency"],
            }
        )
    return result


def recurring_amount(items: list[dict[str, Any]]) -> int:
    return sum(int(item["unit_amount"]) * int(item["quantity"]) for item in items)


def render_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "object": "subscription_item",
        "price_id": item["price_id"],
        "quantity": item["quantity"],
        "unit_amount": money.format_amount(int(item["unit_amount"]), item["currency"]),
    }


def period_line(item: dict[str, Any], start: int, end: int, description: str | None = None) -> dict[str, Any]:
    """An invoice line charging one item for the period [start, end)."""
    return {
        "id": new_id("il"),
        "description": description or f"{item['quantity']} x {item['price_id']}",
        "price_id": item["price_id"],
        "quantity": item["quantity"],
        "amount": int(item["unit_amount"]) * int(item["quantity"]),
        "proration": False,
        "period": {"start": start, "end": end},
    }

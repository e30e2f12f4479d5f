"""Helpers of the payer-page tests: products, prices and checkout sessions made through the API."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import httpx
from playwright.async_api import Page


async def ok(request: Awaitable[httpx.Response]) -> dict[str, Any]:
    response = await request
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def price(
    api: httpx.AsyncClient, amount: str = "19.99", *, name: str = "Pro plan", currency: str = "usd",
    interval: str | None = None, trial_days: int | None = None, product_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    if product_id is None:
        product_id = (await ok(api.post("/api/products", json={"name": name})))["id"]
    body: dict[str, Any] = {"product_id": product_id, "unit_amount": amount, "currency": currency}
    if interval:
        body["recurring"] = {"interval": interval}
    if trial_days is not None:
        body["trial_period_days"] = trial_days
    return await ok(api.post("/api/prices", json=body))


async def session(api: httpx.AsyncClient, price_id: str, **fields: Any) -> dict[str, Any]:
    body = {"mode": "payment", "line_items": [{"price_id": price_id, "quantity": fields.pop("quantity", 1)}], **fields}
    return await ok(api.post("/api/checkout-sessions", json=body))


async def events(api: httpx.AsyncClient, prefix: str = "*") -> list[dict[str, Any]]:
    """Every event of this mode, oldest first."""
    body = await ok(api.get("/api/events", params={"size": 100, "type": prefix}))
    return list(reversed(body["list"]))


async def fill_card(page: Page, number: str = "4242 4242 4242 4242", expiry: str = "12 / 34", cvc: str = "123") -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry").fill(expiry)
    await page.get_by_label("CVC").fill(cvc)

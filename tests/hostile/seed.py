"""One object of every resource type, created through the API in one mode (test or live)."""

from __future__ import annotations

import time
from typing import Any

import httpx


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(path, json=body or {})
    assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text}"
    found: dict[str, Any] = response.json()
    return found


async def seed(client: httpx.AsyncClient, *, endpoint_url: str) -> dict[str, str]:
    """Create every kind of object; returns resource name -> id.

    The keys are the resource names used by the authorization table (`customer`, `price`, …).
    """
    ids: dict[str, str] = {}
    clock = await client.post("/api/test-clocks", json={"frozen_time": int(time.time()), "name": "seed"})
    if clock.status_code == 200:  # test clocks exist in test mode only
        ids["test_clock"] = clock.json()["id"]
    customer = await _post(client, "/api/customers", {"email": "seed@example.com", "name": "Seed"})
    ids["customer"] = customer["id"]
    ids["product"] = (await _post(client, "/api/products", {"name": "Seed plan"}))["id"]
    recurring = {"unit_amount": "10.00", "currency": "usd", "recurring": {"interval": "month"}}
    ids["price"] = (await _post(client, "/api/prices", {"product_id": ids["product"], **recurring}))["id"]
    one_time = {"product_id": ids["product"], "unit_amount": "25.00", "currency": "usd", "type": "one_time"}
    ids["one_time_price"] = (await _post(client, "/api/prices", one_time))["id"]
    endpoint = await _post(client, "/api/webhook-endpoints", {"url": endpoint_url, "enabled_events": ["*"]})
    ids["webhook_endpoint"] = endpoint["id"]
    session = await _post(
        client,
        "/api/checkout-sessions",
        {"mode": "payment", "line_items": [{"price_id": ids["one_time_price"]}], "customer_id": ids["customer"]},
    )
    ids["checkout_session"] = session["id"]
    paid = await _post(client, f"/api/checkout-sessions/{session['id']}/confirm", {"payment_method": "pm_card_visa"})
    ids["payment_intent"] = paid["payment_intent_id"]
    subscription = await _post(
        client,
        "/api/subscriptions",
        {
            "customer_id": ids["customer"],
            "items": [{"price_id": ids["price"]}],
            "default_payment_method": "pm_card_visa",
        },
    )
    ids["subscription"] = subscription["id"]
    invoices = (await client.get("/api/invoices", params={"subscription_id": subscription["id"]})).json()
    ids["invoice"] = invoices["list"][0]["id"]
    ids["refund"] = (await _post(client, "/api/refunds", {"payment_intent_id": ids["payment_intent"]}))["id"]
    link = await _post(client, "/api/payment-links", {"line_items": [{"price_id": ids["one_time_price"]}]})
    ids["payment_link"] = link["id"]
    ids["event"] = (await client.get("/api/events", params={"size": 1})).json()["list"][0]["id"]
    ids["event_consumer"] = f"seed-consumer-{'live' if customer['livemode'] else 'test'}"  # names are per mode
    consumer = await client.put(f"/api/event-consumers/{ids['event_consumer']}", json={"last_event_id": ids["event"]})
    assert consumer.status_code == 200, consumer.text
    return ids

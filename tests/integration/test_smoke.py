from __future__ import annotations

import httpx


async def test_create_customer_emits_event(api: httpx.AsyncClient) -> None:
    created = (await api.post("/api/customers", json={"email": "a@example.com"})).json()
    events = (await api.get("/api/events")).json()
    assert events["count"] == 1
    assert events["list"][0]["type"] == "customer.created"
    assert events["list"][0]["data"]["object"] == created

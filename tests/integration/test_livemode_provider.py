"""Live mode charges only through a configured live provider: test cards never pay live invoices."""

from __future__ import annotations

from tests.conftest import Server


async def test_live_charges_are_refused_until_a_live_provider_is_configured(server: Server) -> None:
    async with server.client(server.live_key) as live:
        product = (await live.post("/api/products", json={"name": "Pro"})).json()
        price = (
            await live.post(
                "/api/prices",
                json={
                    "product_id": product["id"],
                    "unit_amount": "9.00",
                    "currency": "usd",
                    "recurring": {"interval": "month"},
                },
            )
        ).json()
        customer = (await live.post("/api/customers", json={"email": "live@example.com"})).json()
        events_before = (await live.get("/api/events")).json()["count"]

        subscription = await live.post(
            "/api/subscriptions",
            json={
                "customer_id": customer["id"],
                "items": [{"price_id": price["id"]}],
                "default_payment_method": "pm_card_visa",
            },
        )
        assert subscription.status_code == 400
        assert subscription.json()["error"]["code"] == "livemode_provider_missing"

        session = (
            await live.post(
                "/api/checkout-sessions",
                json={
                    "mode": "subscription",
                    "line_items": [{"price_id": price["id"], "quantity": 1}],
                    "customer_id": customer["id"],
                },
            )
        ).json()
        confirmed = await live.post(
            f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"}
        )
        assert confirmed.status_code == 400 and confirmed.json()["error"]["code"] == "livemode_provider_missing"

        assert (await live.get("/api/subscriptions")).json()["count"] == 0
        assert (await live.get("/api/payment-intents")).json()["count"] == 0
        after = (await live.get("/api/events")).json()
        assert {e["type"] for e in after["list"][: after["count"] - events_before]} <= {"checkout.session.created"}

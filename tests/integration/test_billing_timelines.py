"""One scenario per row of the contract's timeline table (DESIGN.md §3), through the HTTP API only.

Each scenario asserts the exact ordered list of Payment Kit event types its transition emitted
(Paywire's own types may be interleaved and are filtered out), plus the key fields. Every test
runs on SQLite and on PostgreSQL. Time-driven rows use a test clock.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from paywire.events.catalogue import PAYMENT_KIT_EVENT_TYPES

PAYMENT_KIT = set(PAYMENT_KIT_EVENT_TYPES)
DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


class Timeline:
    """The events emitted since the last `take()`, oldest first."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.seen = 0

    async def all_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        page = 1
        while True:
            body = (await self.api.get("/api/events", params={"page": page, "size": 100})).json()
            events.extend(body["list"])
            if len(events) >= body["count"]:
                return list(reversed(events))
            page += 1

    async def take(self) -> list[dict[str, Any]]:
        events = await self.all_events()
        new, self.seen = events[self.seen :], len(events)
        return [e for e in new if e["type"] in PAYMENT_KIT]

    async def types(self) -> list[str]:
        return [e["type"] for e in await self.take()]


async def ok(response: httpx.Response | Any) -> dict[str, Any]:
    response = await response if not isinstance(response, httpx.Response) else response
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def price(
    api: httpx.AsyncClient,
    amount: str = "10.00",
    *,
    interval: str | None = "month",
    count: int = 1,
    trial_days: int | None = None,
) -> str:
    product = await ok(api.post("/api/products", json={"name": "Plan"}))
    body: dict[str, Any] = {"product_id": product["id"], "unit_amount": amount, "currency": "usd"}
    if interval:
        body["recurring"] = {"interval": interval, "interval_count": count}
    if trial_days is not None:
        body["trial_period_days"] = trial_days
    return str((await ok(api.post("/api/prices", json=body)))["id"])


async def clock_customer(api: httpx.AsyncClient, at: int = T0) -> tuple[str, str]:
    clock = await ok(api.post("/api/test-clocks", json={"frozen_time": at}))
    customer = await ok(api.post("/api/customers", json={"email": "c@example.com", "test_clock_id": clock["id"]}))
    return clock["id"], customer["id"]


async def advance(api: httpx.AsyncClient, clock_id: str, to: int) -> dict[str, Any]:
    clock = await ok(api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": to}))
    assert clock["status"] == "ready" and clock["frozen_time"] == to
    return clock


async def subscribe(
    api: httpx.AsyncClient,
    customer_id: str,
    price_id: str,
    *,
    pm: str | None = "pm_card_visa",
    trial_days: int | None = None,
    quantity: int = 1,
) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": customer_id, "items": [{"price_id": price_id, "quantity": quantity}]}
    if pm:
        body["default_payment_method"] = pm
    if trial_days is not None:
        body["trial_period_days"] = trial_days
    return await ok(api.post("/api/subscriptions", json=body))


def obj(event: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = event["data"]["object"]
    return data


# --- checkout -----------------------------------------------------------------------------


async def test_checkout_payment_card_pays(api: httpx.AsyncClient) -> None:
    one, two = await price(api, "19.99", interval=None), await price(api, "5.00", interval=None)
    timeline = Timeline(api)
    session = await ok(
        api.post(
            "/api/checkout-sessions",
            json={
                "mode": "payment",
                "line_items": [{"price_id": one, "quantity": 2}, {"price_id": two}],
                "success_url": "https://shop.example/done",
            },
        )
    )
    assert session["status"] == "open" and session["amount_total"] == "44.98"
    await timeline.take()
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    events = await timeline.take()
    assert [e["type"] for e in events] == ["payment_intent.succeeded", "checkout.session.completed"]
    intent, completed = obj(events[0]), obj(events[1])
    assert intent["amount"] == "44.98" and intent["status"] == "succeeded" and intent["currency"] == "usd"
    assert completed["status"] == "complete" and completed["payment_status"] == "paid"
    assert completed["payment_intent_id"] == intent["id"] == done["payment_intent_id"]
    again = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    assert again.status_code == 409


async def test_checkout_card_declined_then_another_card(api: httpx.AsyncClient) -> None:
    one = await price(api, "12.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": one}]}))
    timeline = Timeline(api)
    await timeline.take()
    declined = await api.post(
        f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa_chargeDeclined"}
    )
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert error["type"] == "card_error" and error["code"] == "card_declined"
    assert error["decline_code"] == "generic_decline"
    events = await timeline.take()
    assert [e["type"] for e in events] == ["payment_intent.payment_failed"]
    failed = obj(events[0])
    assert failed["status"] == "requires_payment_method" and failed["last_payment_error"]["code"] == "card_declined"
    assert error["payment_intent"]["id"] == failed["id"]
    still = await ok(api.get(f"/api/checkout-sessions/{session['id']}"))
    assert still["status"] == "open"
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    assert await timeline.types() == ["payment_intent.succeeded", "checkout.session.completed"]
    assert done["payment_intent_id"] == failed["id"]  # the same intent, paid by the second card


async def test_checkout_subscription_no_trial(api: httpx.AsyncClient) -> None:
    plan = await price(api, "9.00")
    _, customer_id = await clock_customer(api)
    session = await ok(
        api.post(
            "/api/checkout-sessions",
            json={
                "mode": "subscription",
                "customer_id": customer_id,
                "line_items": [{"price_id": plan, "quantity": 3}],
            },
        )
    )
    timeline = Timeline(api)
    await timeline.take()
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.created",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.started",
        "checkout.session.completed",
    ]
    sub = obj(events[0])
    assert sub["status"] == "active" and sub["current_period_start"] == T0
    assert sub["current_period_end"] == T0 + 31 * DAY  # Jan 1 → Feb 1
    assert obj(events[1])["amount"] == "27.00"
    invoice = obj(events[2])
    assert invoice["status"] == "paid" and invoice["total"] == "27.00" and invoice["subscription_id"] == sub["id"]
    assert done["subscription_id"] == sub["id"] and done["status"] == "complete"


async def test_checkout_subscription_trial(api: httpx.AsyncClient) -> None:
    plan = await price(api, "9.00", trial_days=30)
    session = await ok(
        api.post(
            "/api/checkout-sessions",
            json={
                "mode": "subscription",
                "line_items": [{"price_id": plan}],
                "subscription_data": {"trial_period_days": 7},
            },
        )
    )
    assert session["amount_total"] == "0.00"
    timeline = Timeline(api)
    await timeline.take()
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.created",
        "customer.subscription.trial_start",
        "checkout.session.completed",
    ]
    sub = obj(events[0])
    assert sub["status"] == "trialing" and sub["trial_end"] - sub["trial_start"] == 7 * DAY
    assert done["payment_status"] == "no_payment_required" and done["customer_id"] == sub["customer_id"]


async def test_checkout_nft_minted(api: httpx.AsyncClient) -> None:
    from paywire.minting import verify_receipt

    one = await price(api, "50.00", interval=None)
    session = await ok(
        api.post(
            "/api/checkout-sessions",
            json={"mode": "payment", "line_items": [{"price_id": one}], "nft_mint_settings": {"enabled": True}},
        )
    )
    timeline = Timeline(api)
    await timeline.take()
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.nft_minted",
    ]
    assert obj(events[1])["nft_mint_status"] == "pending"
    minted = obj(events[2])
    assert minted["nft_mint_status"] == "minted" and done["nft_mint_status"] == "minted"
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anyone:  # no API key needed
        key = await ok(anyone.get("/api/nft/public-key"))
    payload = verify_receipt(minted["nft_mint_details"]["token"], key["public_key"])
    assert payload["checkout_session_id"] == session["id"] and payload["amount_total"] == "50.00"
    forged = minted["nft_mint_details"]["token"][:-4] + "AAAA"
    with pytest.raises(ValueError):
        verify_receipt(forged, key["public_key"])


# --- subscriptions created directly --------------------------------------------------------


async def test_direct_subscription_no_trial(api: httpx.AsyncClient) -> None:
    plan = await price(api, "15.00")
    _, customer_id = await clock_customer(api)
    timeline = Timeline(api)
    await timeline.take()
    sub = await subscribe(api, customer_id, plan, quantity=2)
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.created",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.started",
    ]
    assert obj(events[0])["status"] == "active" == sub["status"]
    assert obj(events[1])["amount"] == "30.00"
    assert sub["billing_cycle_anchor"] == T0 and sub["current_period_end"] == T0 + 31 * DAY


async def test_direct_subscription_trial(api: httpx.AsyncClient) -> None:
    plan = await price(api, "15.00")
    _, customer_id = await clock_customer(api)
    timeline = Timeline(api)
    await timeline.take()
    sub = await subscribe(api, customer_id, plan, pm=None, trial_days=14)
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.created", "customer.subscription.trial_start"]
    assert sub["status"] == "trialing" and sub["trial_start"] == T0 and sub["trial_end"] == T0 + 14 * DAY
    assert (sub["current_period_start"], sub["current_period_end"]) == (T0, T0 + 14 * DAY)
    assert (await ok(api.get("/api/invoices", params={"subscription_id": sub["id"]})))["count"] == 0


# --- trials over time -----------------------------------------------------------------------


async def test_trial_will_end_three_days_before_then_trial_end_pays(api: httpx.AsyncClient) -> None:
    plan = await price(api, "20.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan, trial_days=14)
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0 + 11 * DAY - 1)
    assert await timeline.types() == []
    await advance(api, clock_id, T0 + 11 * DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.trial_will_end"]
    assert events[0]["created"] == T0 + 11 * DAY  # the clock's time, not the wall clock's
    await advance(api, clock_id, T0 + 14 * DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.trial_end",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.started",
        "customer.subscription.updated",
    ]
    updated = events[-1]
    after = obj(updated)
    assert after["status"] == "active"
    assert (after["current_period_start"], after["current_period_end"]) == (T0 + 14 * DAY, T0 + 45 * DAY)
    previous = updated["data"]["previous_attributes"]
    assert previous["status"] == "trialing"
    assert previous["current_period_start"] == T0 and previous["current_period_end"] == T0 + 14 * DAY
    assert (
        obj(events[2])["total"] == "20.00"
        and obj(events[2])["id"] == after["latest_invoice_id"] != sub["latest_invoice_id"]
    )


async def test_trial_will_end_at_once_for_a_short_trial(api: httpx.AsyncClient) -> None:
    plan = await price(api, "20.00")
    clock_id, customer_id = await clock_customer(api)
    await subscribe(api, customer_id, plan, trial_days=2)
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0)  # nothing moves, but what is due now runs
    assert await timeline.types() == ["customer.subscription.trial_will_end"]
    await advance(api, clock_id, T0 + 2 * DAY - 1)
    assert await timeline.types() == []


async def test_trial_end_charge_fails(api: httpx.AsyncClient) -> None:
    plan = await price(api, "20.00")
    clock_id, customer_id = await clock_customer(api)
    await subscribe(api, customer_id, plan, pm="pm_card_chargeCustomerFail", trial_days=5)
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0 + 5 * DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.trial_will_end",
        "customer.subscription.trial_end",
        "payment_intent.payment_failed",
        "customer.subscription.updated",
    ]
    assert obj(events[3])["status"] == "past_due"
    assert events[3]["data"]["previous_attributes"]["status"] == "trialing"


# --- renewals and dunning -------------------------------------------------------------------


async def test_period_ends_card_pays(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, sub["current_period_end"])
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]
    renewed = obj(events[3])
    assert renewed["current_period_start"] == sub["current_period_end"]
    assert events[3]["data"]["previous_attributes"]["current_period_end"] == sub["current_period_end"]
    assert obj(events[1])["period_start"] == sub["current_period_end"]


async def test_period_ends_charge_fails_retries_then_cancels(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"default_payment_method": "pm_card_chargeCustomerFail"}))
    timeline = Timeline(api)
    await timeline.take()
    end = sub["current_period_end"]
    await advance(api, clock_id, end)
    events = await timeline.take()
    assert [e["type"] for e in events] == ["payment_intent.payment_failed", "customer.subscription.updated"]
    assert obj(events[1])["status"] == "past_due"
    invoice_id = obj(events[1])["latest_invoice_id"]
    invoice = await ok(api.get(f"/api/invoices/{invoice_id}"))
    assert invoice["status"] == "open" and invoice["next_payment_attempt"] == end + DAY
    for day in (1, 3):
        await advance(api, clock_id, end + day * DAY)
        assert await timeline.types() == ["payment_intent.payment_failed"]
    await advance(api, clock_id, end + 5 * DAY - 1)
    assert await timeline.types() == []
    await advance(api, clock_id, end + 5 * DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == ["payment_intent.payment_failed", "customer.subscription.deleted"]
    assert obj(events[1])["status"] == "canceled" and obj(events[1])["ended_at"] == end + 5 * DAY
    assert (await ok(api.get(f"/api/invoices/{invoice_id}")))["status"] == "uncollectible"
    await advance(api, clock_id, end + 60 * DAY)
    assert await timeline.types() == []  # nothing more for a canceled subscription


async def test_failed_renewal_paid_by_a_retry(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan, pm="pm_card_chargeCustomerFail", trial_days=0)
    assert sub["status"] == "incomplete"
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"default_payment_method": "pm_card_visa"}))
    paid = await ok(api.post(f"/api/invoices/{sub['latest_invoice_id']}/pay"))
    assert paid["status"] == "paid"
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"default_payment_method": "pm_card_chargeCustomerFail"}))
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, sub["current_period_end"])
    assert await timeline.types() == ["payment_intent.payment_failed", "customer.subscription.updated"]
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"default_payment_method": "pm_card_visa"}))
    await timeline.take()
    await advance(api, clock_id, sub["current_period_end"] + DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]
    assert obj(events[3])["status"] == "active"
    assert events[3]["data"]["previous_attributes"] == {"status": "past_due"}
    await advance(api, clock_id, sub["current_period_end"] + 6 * DAY)
    assert await timeline.types() == []  # the remaining retries were canceled


# --- changes --------------------------------------------------------------------------------


async def test_price_raised_mid_period_charges_proration(api: httpx.AsyncClient) -> None:
    cheap, dear = (
        await price(api, "10.00", interval="day", count=30),
        await price(api, "20.00", interval="day", count=30),
    )
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, cheap)
    await advance(api, clock_id, T0 + 15 * DAY)  # exactly half of the 30-day period is left
    timeline = Timeline(api)
    await timeline.take()
    changed = await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": dear}]}))
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.upgraded",
        "customer.subscription.updated",
    ]
    assert obj(events[0])["amount"] == "5.00"
    invoice = obj(events[1])
    assert [line["amount"] for line in invoice["lines"]] == ["-5.00", "10.00"]
    assert all(line["proration"] for line in invoice["lines"]) and invoice["total"] == "5.00"
    assert changed["items"][0]["price_id"] == dear and changed["items"][0]["id"] == sub["items"][0]["id"]
    previous = events[3]["data"]["previous_attributes"]
    assert previous["items"][0]["price_id"] == cheap
    # the next renewal charges the new price in full
    await advance(api, clock_id, T0 + 30 * DAY)
    events = await timeline.take()
    assert obj(events[1])["total"] == "20.00"


async def test_price_lowered_credits_next_invoice(api: httpx.AsyncClient) -> None:
    dear, cheap = (
        await price(api, "20.00", interval="day", count=30),
        await price(api, "10.00", interval="day", count=30),
    )
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, dear)
    await advance(api, clock_id, T0 + 15 * DAY)
    timeline = Timeline(api)
    await timeline.take()
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": cheap}]}))
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.updated"]
    assert events[0]["data"]["previous_attributes"]["items"][0]["price_id"] == dear
    assert (await ok(api.get("/api/invoices", params={"subscription_id": sub["id"]})))["count"] == 1
    await advance(api, clock_id, T0 + 30 * DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]
    invoice = obj(events[1])
    # 10.00 for the new period, then the proration: -10.00 unused of 20.00, +5.00 remaining of 10.00.
    assert [line["amount"] for line in invoice["lines"]] == ["10.00", "-10.00", "5.00"]
    assert [line["proration"] for line in invoice["lines"]] == [False, True, True]
    assert invoice["total"] == "5.00" and obj(events[0])["amount"] == "5.00"


async def test_credit_larger_than_the_next_invoice_carries_forward(api: httpx.AsyncClient) -> None:
    dear, cheap = (
        await price(api, "20.00", interval="day", count=30),
        await price(api, "10.00", interval="day", count=30),
    )
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, dear, quantity=2)
    await advance(api, clock_id, T0 + 15 * DAY)
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": cheap, "quantity": 1}]}))
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0 + 30 * DAY)
    events = await timeline.take()
    # Nothing to charge: no payment intent, the invoice is paid by the credit.
    assert [e["type"] for e in events] == [
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]
    invoice = obj(events[0])
    assert [line["amount"] for line in invoice["lines"]] == ["10.00", "-20.00", "5.00"]
    assert invoice["total"] == "-5.00" and invoice["amount_due"] == "0.00"
    await advance(api, clock_id, T0 + 60 * DAY)
    events = await timeline.take()
    invoice = obj(events[1])
    assert [line["amount"] for line in invoice["lines"]] == ["10.00", "-5.00"]
    assert invoice["total"] == "5.00" and obj(events[0])["amount"] == "5.00"


async def test_quantity_changed_down_is_an_update(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    _, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan, quantity=3)
    timeline = Timeline(api)
    await timeline.take()
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": plan, "quantity": 1}]}))
    assert await timeline.types() == ["customer.subscription.updated"]


async def test_pause_then_resume(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    timeline = Timeline(api)
    await timeline.take()
    paused = await ok(api.post(f"/api/subscriptions/{sub['id']}/pause"))
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.paused", "customer.subscription.updated"]
    assert paused["status"] == "paused" and events[1]["data"]["previous_attributes"]["status"] == "active"
    await advance(api, clock_id, T0 + 70 * DAY)  # two period ends pass: no invoices while paused
    assert await timeline.types() == []
    assert (await ok(api.get("/api/invoices", params={"subscription_id": sub["id"]})))["count"] == 1
    resumed = await ok(api.post(f"/api/subscriptions/{sub['id']}/resume"))
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "customer.subscription.resumed",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.updated",
    ]
    assert resumed["status"] == "active" and resumed["current_period_start"] == T0 + 70 * DAY
    assert resumed["billing_cycle_anchor"] == T0 + 70 * DAY
    assert events[3]["data"]["previous_attributes"]["status"] == "paused"
    assert obj(events[2])["total"] == "10.00"


async def test_cancel_at_period_end(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    timeline = Timeline(api)
    await timeline.take()
    await ok(api.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True}))
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.updated"]
    assert obj(events[0])["cancel_at_period_end"] is True
    assert events[0]["data"]["previous_attributes"]["cancel_at_period_end"] is False
    await advance(api, clock_id, sub["current_period_end"])
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    assert obj(events[0])["status"] == "canceled" and obj(events[0])["ended_at"] == sub["current_period_end"]


async def test_cancel_now(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    timeline = Timeline(api)
    await timeline.take()
    canceled = await ok(api.post(f"/api/subscriptions/{sub['id']}/cancel"))
    assert await timeline.types() == ["customer.subscription.deleted"]
    assert canceled["status"] == "canceled" and canceled["canceled_at"] == T0 == canceled["ended_at"]
    assert (await api.post(f"/api/subscriptions/{sub['id']}/cancel")).status_code == 409
    await advance(api, clock_id, T0 + 40 * DAY)
    assert await timeline.types() == []


# --- refunds --------------------------------------------------------------------------------


async def test_refund_of_a_payment(api: httpx.AsyncClient) -> None:
    one = await price(api, "30.00", interval=None)
    session = await ok(api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": one}]}))
    done = await ok(
        api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    )
    intent_id = done["payment_intent_id"]
    timeline = Timeline(api)
    await timeline.take()
    partial = await ok(api.post(f"/api/payment-intents/{intent_id}/refund", json={"amount": "12.50"}))
    events = await timeline.take()
    assert [e["type"] for e in events] == ["refund.succeeded"]
    assert obj(events[0])["amount"] == "12.50" == partial["amount"]
    too_much = await api.post(f"/api/payment-intents/{intent_id}/refund", json={"amount": "17.51"})
    assert too_much.status_code == 400 and too_much.json()["error"]["param"] == "amount"
    # In the API's decimal strings, as the amount was sent (it said "1751 exceeds the 1750").
    message = too_much.json()["error"]["message"]
    assert message == "refund amount 17.51 usd exceeds the 17.50 usd that remains refundable"
    rest = await ok(api.post("/api/refunds", json={"payment_intent_id": intent_id}))
    assert rest["amount"] == "17.50"
    assert await timeline.types() == ["refund.succeeded"]
    assert (await api.post(f"/api/payment-intents/{intent_id}/refund")).status_code == 400
    intent = await ok(api.get(f"/api/payment-intents/{intent_id}"))
    assert intent["amount_refunded"] == "30.00"
    refunds = await ok(api.get("/api/refunds", params={"payment_intent_id": intent_id}))
    assert refunds["count"] == 2

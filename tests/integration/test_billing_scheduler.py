"""The scheduler and test clocks: exactly-once with several schedulers, speed, anchor dates,
wall-clock jobs, and bad input answered with a clear 4xx (never a 500, never half a write)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import httpx
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing import products as catalogue_objects
from paywire.billing import subscriptions
from paywire.billing.scheduler import Scheduler, run_due
from paywire.billing.schemas import SubscriptionCreate, SubscriptionItemIn
from paywire.db.schema import billing_jobs, events, invoices
from paywire.schemas import CustomerCreate, PriceCreate, ProductCreate, Recurring
from tests.conftest import Server

from .test_billing_timelines import DAY, T0, Timeline, advance, clock_customer, ok, price, subscribe


class ManualClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


async def _monthly_subscriptions(app: PaywireApp, count: int) -> list[str]:
    from paywire.billing import customers

    call = app.billing.call(False)
    async with app.db.transaction() as tx:
        product = await catalogue_objects.create_product(tx, call, ProductCreate(name="P"))
        plan = await catalogue_objects.create_price(
            tx,
            call,
            PriceCreate(
                product_id=product["id"], unit_amount="4.00", currency="usd", recurring=Recurring(interval="month")
            ),
        )
    ids = []
    for _ in range(count):
        async with app.db.transaction() as tx:
            customer = await customers.create(tx, call, CustomerCreate())
            sub = await subscriptions.create(
                tx,
                call,
                SubscriptionCreate(
                    customer_id=customer["id"],
                    items=[SubscriptionItemIn(price_id=plan["id"])],
                    default_payment_method="pm_card_visa",
                ),
            )
            ids.append(sub["id"])
    return ids


async def test_two_schedulers_run_each_job_exactly_once(database_url: str) -> None:
    """Two apps (two engines, two pools) on one database, three concurrent runners each."""
    clock = ManualClock(T0)
    first = PaywireApp(database_url, clock=clock, run_worker=False)
    second = PaywireApp(database_url, clock=clock, run_worker=False)
    async with first.running(), second.running():
        ids = await _monthly_subscriptions(first, 24)
        clock.t = T0 + 32 * DAY  # every first period has ended
        ran = await asyncio.gather(*[run_due(app.db, app.billing) for app in (first, second) for _ in range(3)])
        assert sum(ran) == 24
        async with first.db.read() as conn:
            renewed = await conn.scalar(
                sa.select(sa.func.count()).where(events.c.type == "customer.subscription.renewed")
            )
            per_sub = (
                await conn.execute(
                    sa.select(invoices.c.subscription_id, sa.func.count())
                    .group_by(invoices.c.subscription_id)
                    .where(invoices.c.subscription_id.in_(ids))
                )
            ).all()
            statuses: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.select(billing_jobs.c.status, sa.func.count()).group_by(billing_jobs.c.status)
                    )
                ).all()
            )
        assert renewed == 24
        assert sorted(n for _, n in per_sub) == [2] * 24
        assert statuses.get("failed") is None
        assert statuses["pending"] == 24  # the next renewals, not yet due


async def test_scheduler_service_runs_wall_clock_jobs(database_url: str) -> None:
    """`PaywireApp(run_worker=True)` runs the scheduler: a session expires on time by itself."""
    clock = ManualClock(time.time())
    app = PaywireApp(database_url, clock=clock)
    async with app.running():
        scheduler = next(s for s in app.background if isinstance(s, Scheduler))
        scheduler.poll_interval = 0.05
        from paywire.billing import checkout
        from paywire.billing.schemas import CheckoutSessionCreate, LineItem

        async with app.db.transaction() as tx:
            call = app.billing.call(False)
            product = await catalogue_objects.create_product(tx, call, ProductCreate(name="P"))
            one = await catalogue_objects.create_price(
                tx, call, PriceCreate(product_id=product["id"], unit_amount="1.00", currency="usd")
            )
            session = await checkout.create(
                tx,
                app.billing.call(False),
                CheckoutSessionCreate(mode="payment", line_items=[LineItem(price_id=one["id"])]),
            )
        clock.t += 24 * 3600
        scheduler.wake()
        for _ in range(100):
            async with app.db.read() as conn:
                found = await conn.scalar(sa.select(events.c.type).where(events.c.type == "checkout.session.expired"))
            if found:
                break
            await asyncio.sleep(0.05)
        assert found == "checkout.session.expired"
        assert session["status"] == "open"


async def test_a_year_of_monthly_renewals_in_one_advance(api: httpx.AsyncClient) -> None:
    """Correctness only; how fast this runs is measured by bench/clock_advance.py."""
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan)
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0 + 365 * DAY)
    types = await timeline.types()
    assert (
        types
        == [
            "payment_intent.succeeded",
            "invoice.paid",
            "customer.subscription.renewed",
            "customer.subscription.updated",
        ]
        * 12
    )
    listed = await ok(api.get("/api/invoices", params={"subscription_id": sub["id"], "size": 100}))
    periods = sorted((i["period_start"], i["period_end"]) for i in listed["list"])
    assert len(periods) == 13
    assert all(a[1] == b[0] for a, b in itertools.pairwise(periods))  # contiguous


async def test_anchor_dates_jan_31(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    jan31 = 1_769_817_600  # 2026-01-31T00:00:00Z
    clock_id, customer_id = await clock_customer(api, jan31)
    sub = await subscribe(api, customer_id, plan)
    ends = [sub["current_period_end"]]
    for _ in range(3):
        await advance(api, clock_id, ends[-1])
        ends.append((await ok(api.get(f"/api/subscriptions/{sub['id']}")))["current_period_end"])

    def day(ts: float) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts))

    assert [day(ts) for ts in ends] == ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]


async def test_yearly_and_weekly_intervals(api: httpx.AsyncClient) -> None:
    yearly, fortnightly = (
        await price(api, "100.00", interval="year"),
        await price(api, "3.00", interval="week", count=2),
    )
    _, customer_id = await clock_customer(api)
    assert (await subscribe(api, customer_id, yearly))["current_period_end"] == T0 + 365 * DAY
    assert (await subscribe(api, customer_id, fortnightly))["current_period_end"] == T0 + 14 * DAY


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(api: httpx.AsyncClient, server: Server) -> None:
    recurring, one_time = await price(api, "10.00"), await price(api, "5.00", interval=None)
    eur = await ok(api.post("/api/products", json={"name": "E"}))
    euro = (
        await ok(api.post("/api/prices", json={"product_id": eur["id"], "unit_amount": "1.00", "currency": "eur"}))
    )["id"]
    monthly_eur = {
        "product_id": eur["id"],
        "unit_amount": "1.00",
        "currency": "eur",
        "recurring": {"interval": "month"},
    }
    euro_monthly = (await ok(api.post("/api/prices", json=monthly_eur)))["id"]
    clock_id, customer_id = await clock_customer(api)
    before = (await api.get("/api/events")).json()["count"]

    async def expect(status: int, param: str | None, response: Any) -> None:
        response = await response
        assert response.status_code == status, response.text
        assert response.json()["error"]["param"] == param, response.text

    cs = "/api/checkout-sessions"
    await expect(
        400, "line_items.0.price_id", api.post(cs, json={"mode": "payment", "line_items": [{"price_id": recurring}]})
    )
    await expect(
        400,
        "line_items.0.price_id",
        api.post(cs, json={"mode": "subscription", "line_items": [{"price_id": one_time}]}),
    )
    await expect(
        400, "line_items.0.price_id", api.post(cs, json={"mode": "payment", "line_items": [{"price_id": "price_nope"}]})
    )
    mixed = [{"price_id": one_time}, {"price_id": euro}]
    await expect(400, "line_items", api.post(cs, json={"mode": "payment", "line_items": mixed}))
    await expect(
        400,
        "line_items.0.quantity",
        api.post(cs, json={"mode": "payment", "line_items": [{"price_id": one_time, "quantity": 0}]}),
    )
    await expect(400, "mode", api.post(cs, json={"mode": "setup", "line_items": [{"price_id": one_time}]}))
    await expect(
        400,
        "expires_at",
        api.post(cs, json={"mode": "payment", "line_items": [{"price_id": one_time}], "expires_at": 5}),
    )
    await expect(
        400,
        "customer_id",
        api.post(cs, json={"mode": "payment", "line_items": [{"price_id": one_time}], "customer_id": "cus_x"}),
    )
    session = await ok(api.post(cs, json={"mode": "payment", "line_items": [{"price_id": one_time}]}))
    before += 1  # checkout.session.created
    await expect(400, "payment_method", api.post(f"{cs}/{session['id']}/confirm", json={"payment_method": "pm_bogus"}))
    await expect(400, "payment_method", api.post(f"{cs}/{session['id']}/confirm", json={}))
    await expect(404, "id", api.post(f"{cs}/cs_nope/confirm", json={"payment_method": "pm_card_visa"}))

    subs = "/api/subscriptions"
    items = [{"price_id": recurring}]
    await expect(400, "default_payment_method", api.post(subs, json={"customer_id": customer_id, "items": items}))
    await expect(
        400,
        "customer_id",
        api.post(subs, json={"customer_id": "cus_nope", "items": items, "default_payment_method": "pm_card_visa"}),
    )
    await expect(
        400,
        "items.0.price_id",
        api.post(
            subs,
            json={
                "customer_id": customer_id,
                "items": [{"price_id": one_time}],
                "default_payment_method": "pm_card_visa",
            },
        ),
    )
    await expect(
        400,
        "test_clock_id",
        api.post(
            subs,
            json={
                "customer_id": customer_id,
                "items": items,
                "default_payment_method": "pm_card_visa",
                "test_clock_id": "clock_nope",
            },
        ),
    )
    declined = await api.post(
        subs, json={"customer_id": customer_id, "items": items, "default_payment_method": "pm_card_visa_chargeDeclined"}
    )
    assert declined.status_code == 402 and declined.json()["error"]["code"] == "card_declined"
    await expect(
        400,
        "items",
        api.post(subs, json={"customer_id": customer_id, "items": [], "default_payment_method": "pm_card_visa"}),
    )
    await expect(404, "id", api.post(f"{subs}/sub_nope/pause"))
    await expect(400, "frozen_time", api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": T0 - 1}))
    await expect(400, "frozen_time", api.post(f"/api/test-clocks/{clock_id}/advance", json={"frozen_time": "soon"}))
    await expect(400, "frozen_time", api.post("/api/test-clocks", json={"frozen_time": -1}))
    await expect(404, "id", api.post("/api/payment-intents/pi_nope/refund"))
    await expect(400, "payment_intent_id", api.post("/api/refunds", json={"payment_intent_id": "pi_nope"}))
    await expect(404, "id", api.get("/api/invoices/in_nope"))
    assert (await api.get("/api/events")).json()["count"] == before  # nothing half-written
    assert (await ok(api.get("/api/subscriptions")))["count"] == 0

    sub = await subscribe(api, customer_id, recurring)
    await expect(400, "items", api.put(f"{subs}/{sub['id']}", json={"items": [{"price_id": euro_monthly}]}))
    await expect(409, None, api.post(f"{subs}/{sub['id']}/resume"))
    await expect(400, "proration_behavior", api.put(f"{subs}/{sub['id']}", json={"proration_behavior": "sometimes"}))
    async with server.client(server.live_key) as live:
        await expect(404, "id", live.get(f"{subs}/{sub['id']}"))  # the other mode never sees it
        await expect(400, None, live.post("/api/test-clocks", json={"frozen_time": T0}))


async def test_upgrade_declined_changes_nothing(api: httpx.AsyncClient) -> None:
    cheap, dear = await price(api, "10.00"), await price(api, "20.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, cheap)
    await advance(api, clock_id, T0 + 10 * DAY)
    await ok(api.put(f"/api/subscriptions/{sub['id']}", json={"default_payment_method": "pm_card_chargeCustomerFail"}))
    timeline = Timeline(api)
    await timeline.take()
    response = await api.put(f"/api/subscriptions/{sub['id']}", json={"items": [{"price_id": dear}]})
    assert response.status_code == 402
    assert await timeline.types() == ["payment_intent.payment_failed"]
    after = await ok(api.get(f"/api/subscriptions/{sub['id']}"))
    assert after["items"][0]["price_id"] == cheap and after["status"] == "active"
    voided = await ok(api.get("/api/invoices", params={"subscription_id": sub["id"], "status": "void"}))
    assert voided["count"] == 1


async def test_incomplete_subscription_paid_later_starts(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    _, customer_id = await clock_customer(api)
    timeline = Timeline(api)
    await timeline.take()
    sub = await subscribe(api, customer_id, plan, pm="pm_card_chargeCustomerFail")
    assert sub["status"] == "incomplete"
    assert await timeline.types() == ["customer.subscription.created", "payment_intent.payment_failed"]
    declined = await api.post(f"/api/invoices/{sub['latest_invoice_id']}/pay")
    assert declined.status_code == 402
    assert await timeline.types() == ["payment_intent.payment_failed"]
    paid = await ok(api.post(f"/api/invoices/{sub['latest_invoice_id']}/pay", json={"payment_method": "pm_card_visa"}))
    assert paid["status"] == "paid" and paid["amount_paid"] == "10.00"
    events = await timeline.take()
    assert [e["type"] for e in events] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.started",
        "customer.subscription.updated",
    ]
    assert events[-1]["data"]["previous_attributes"] == {"status": "incomplete"}


async def test_incomplete_subscription_expires(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    clock_id, customer_id = await clock_customer(api)
    sub = await subscribe(api, customer_id, plan, pm="pm_card_chargeCustomerFail")
    timeline = Timeline(api)
    await timeline.take()
    await advance(api, clock_id, T0 + DAY)
    events = await timeline.take()
    assert [e["type"] for e in events] == ["customer.subscription.deleted"]
    assert obj_status(events[0]) == "incomplete_expired"
    assert (await ok(api.get(f"/api/invoices/{sub['latest_invoice_id']}")))["status"] == "void"


def obj_status(event: dict[str, Any]) -> str:
    return str(event["data"]["object"]["status"])


async def test_checkout_session_on_a_clock_expires(api: httpx.AsyncClient) -> None:
    one = await price(api, "1.00", interval=None)
    clock_id, customer_id = await clock_customer(api)
    session = await ok(
        api.post(
            "/api/checkout-sessions",
            json={
                "mode": "payment",
                "customer_id": customer_id,
                "line_items": [{"price_id": one}],
                "expires_at": T0 + 3600,
            },
        )
    )
    await advance(api, clock_id, T0 + 3600)
    expired = await ok(api.get(f"/api/checkout-sessions/{session['id']}"))
    assert expired["status"] == "expired"
    late = await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
    assert late.status_code == 409


async def test_lists_paginate(api: httpx.AsyncClient) -> None:
    plan = await price(api, "10.00")
    _, customer_id = await clock_customer(api)
    for _ in range(3):
        await subscribe(api, customer_id, plan)
    page = await ok(api.get("/api/subscriptions", params={"size": 2, "customer_id": customer_id}))
    assert page["count"] == 3 and len(page["list"]) == 2 and page["paging"] == {"page": 1, "size": 2}
    second = await ok(api.get("/api/invoices", params={"pageSize": 2, "page": 2}))
    assert second["count"] == 3 and len(second["list"]) == 1
    intents = await ok(api.get("/api/payment-intents", params={"customer_id": customer_id}))
    assert intents["count"] == 3
    clocks = await ok(api.get("/api/test-clocks"))
    assert clocks["count"] == 1


async def test_one_advance_is_bounded_to_three_years(api: httpx.AsyncClient) -> None:
    clock = await ok(api.post("/api/test-clocks", json={"frozen_time": T0}))
    too_far = await api.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": T0 + 1200 * DAY})
    assert too_far.status_code == 400 and too_far.json()["error"]["param"] == "frozen_time"
    await advance(api, clock["id"], T0 + 3 * 366 * DAY)

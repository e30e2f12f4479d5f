"""Two schedulers on PostgreSQL run the same test clock's renewals at once, charging through
Stripe (localstripe): every period is charged exactly once.

Each scheduler has its own engine (as two `paywire worker` processes would) and claims jobs with
`FOR UPDATE SKIP LOCKED`; the job is marked done in the transaction that records its charge as
`processing`, so the other scheduler can never claim it again while Stripe is being asked.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.billing.scheduler import run_one
from paywire.db.schema import invoices, payment_intents
from tests.conftest import new_key, start_server, stop_server
from tests.faults.harness import DAY, T0
from tests.stripe.conftest import LocalStripe, localstripe, stripe_settings  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres
SUBSCRIPTIONS = 6
MONTHS = 3


async def test_two_schedulers_charge_each_period_once(fault_url: str, localstripe: LocalStripe) -> None:  # noqa: F811
    settings = stripe_settings(fault_url, localstripe)
    apps = [PaywireApp(fault_url, settings=settings, run_worker=False) for _ in range(2)]
    uv, task, url = await start_server(apps[0])
    await apps[1].start()
    try:
        key = await new_key(apps[0])
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            product = (await api.post("/api/products", json={"name": "Plan"})).json()
            plan = (
                await api.post("/api/prices", json={"product_id": product["id"], "unit_amount": "10.00",
                                                    "currency": "usd", "recurring": {"interval": "month"}})
            ).json()["id"]  # fmt: skip
            clock = (await api.post("/api/test-clocks", json={"frozen_time": T0})).json()["id"]
            subs = []
            for n in range(SUBSCRIPTIONS):
                customer = (
                    await api.post("/api/customers", json={"email": f"w{n}@example.com", "test_clock_id": clock})
                ).json()
                sub = (
                    await api.post("/api/subscriptions", json={"customer_id": customer["id"],
                                                               "items": [{"price_id": plan}],
                                                               "default_payment_method": "pm_card_visa"})
                ).json()  # fmt: skip
                assert sub["status"] == "active", sub
                subs.append(sub["id"])

        async def scheduler(app: PaywireApp, until: int) -> int:
            ran = 0
            while await run_one(app.db, app.billing, clock_id=clock, until=until):
                ran += 1
            return ran

        split = [0, 0]
        for month in range(1, MONTHS + 1):
            until = T0 + month * 32 * DAY
            ran = await asyncio.gather(*(scheduler(app, until) for app in apps))
            assert sum(ran) >= SUBSCRIPTIONS  # every renewal of the month ran, split between the two
            split = [a + b for a, b in zip(split, ran, strict=True)]
        print(f"\njobs run by each scheduler: {split}")

        async with apps[0].db.read() as conn:
            cycles = Counter(
                (r.subscription_id, r.period_start)
                for r in await conn.execute(
                    sa.select(invoices.c.subscription_id, invoices.c.period_start).where(
                        invoices.c.billing_reason == "subscription_cycle", invoices.c.subscription_id.in_(subs)
                    )
                )
            )
            intents = (
                await conn.execute(
                    sa.select(payment_intents.c.id, payment_intents.c.status)
                    .select_from(payment_intents.join(invoices, invoices.c.id == payment_intents.c.invoice_id))
                    .where(invoices.c.subscription_id.in_(subs), invoices.c.billing_reason == "subscription_cycle")
                )
            ).all()
        assert len(cycles) == SUBSCRIPTIONS * MONTHS and set(cycles.values()) == {1}, cycles
        assert len(intents) == SUBSCRIPTIONS * MONTHS and {i.status for i in intents} == {"succeeded"}
        charged: Counter[str] = Counter()
        for stripe_pi in await localstripe.payment_intents():
            ours = (stripe_pi.get("metadata") or {}).get("paywire_payment_intent")
            if isinstance(ours, str) and ours in {i.id for i in intents}:
                charged[ours] += 1 if stripe_pi["status"] == "succeeded" else 0
        assert len(charged) == SUBSCRIPTIONS * MONTHS and set(charged.values()) == {1}, charged
    finally:
        await apps[1].stop()
        await stop_server(uv, task)

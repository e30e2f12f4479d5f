"""Property tests of money and dates through the billing engine (SQLite, no HTTP).

- An invoice's total is the exact sum of its lines, and proration neither creates nor loses
  money beyond its rounding rule: each proration line is within half a cent of the exact
  rational amount, so a period's total billing is within 1 cent of the exact time-weighted sum.
- Refunds never exceed what was paid, whatever the sequence of requests.
- Successive billing periods are contiguous (no gap, no overlap) across renewals on a test clock,
  and every boundary is `anchor + n * interval`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from paywire.app import PaywireApp
from paywire.billing import checkout, clock_advance, customers, periods, products, refunds, subscriptions
from paywire.billing.schemas import (
    CheckoutSessionCreate,
    LineItem,
    PaymentIntentRefund,
    SubscriptionCreate,
    SubscriptionItemIn,
    SubscriptionUpdate,
    TestClockCreate,
)
from paywire.db.schema import invoices
from paywire.errors import InvalidRequest
from paywire.schemas import CustomerCreate, PriceCreate, ProductCreate, Recurring

T = TypeVar("T")
DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Engine:
    loop: asyncio.AbstractEventLoop
    app: PaywireApp

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def price(self, cents: int, interval: str | None = "month", count: int = 1) -> str:
        recurring = Recurring(interval=interval, interval_count=count) if interval else None  # type: ignore[arg-type]
        call = self.app.billing.call(False)
        async with self.app.db.transaction() as tx:
            product = await products.create_product(tx, call, ProductCreate(name="P"))
            amount = f"{cents // 100}.{cents % 100:02d}"
            params = PriceCreate(product_id=product["id"], unit_amount=amount, currency="usd", recurring=recurring)
            price = await products.create_price(tx, call, params)
        return str(price["id"])

    async def clock_customer(self, at: int) -> tuple[str, str]:
        call = self.app.billing.call(False)
        async with self.app.db.transaction() as tx:
            clock = await clock_advance.create(tx, call, TestClockCreate(frozen_time=at))
            customer = await customers.create(tx, call, CustomerCreate(test_clock_id=clock["id"]))
        return clock["id"], customer["id"]

    async def subscribe(self, customer_id: str, price_id: str, quantity: int = 1) -> dict[str, Any]:
        async with self.app.db.transaction() as tx:
            params = SubscriptionCreate(
                customer_id=customer_id,
                items=[SubscriptionItemIn(price_id=price_id, quantity=quantity)],
                default_payment_method="pm_card_visa",
            )
            return await subscriptions.create(tx, self.app.billing.call(False), params)

    async def advance(self, clock_id: str, to: int) -> None:
        await clock_advance.advance(self.app.db, self.app.billing, self.app.billing.call(False), clock_id, to)

    async def invoices_of(self, subscription_id: str) -> list[sa.RowMapping]:
        async with self.app.db.read() as conn:
            query = sa.select(invoices).where(invoices.c.subscription_id == subscription_id).order_by(invoices.c.seq)
            return list((await conn.execute(query)).mappings().all())


@pytest.fixture
def engine() -> Iterator[Engine]:
    loop = asyncio.new_event_loop()
    app = PaywireApp("sqlite:///:memory:", run_worker=False)
    loop.run_until_complete(app.start())
    try:
        yield Engine(loop, app)
    finally:
        loop.run_until_complete(app.stop())
        loop.close()


cents = st.integers(min_value=1, max_value=100_000_00)


@PROPERTY
@given(
    old=cents,
    new=cents,
    old_quantity=st.integers(1, 5),
    new_quantity=st.integers(1, 5),
    at=st.integers(min_value=1, max_value=30 * DAY - 1),
)
@example(old=1, new=3, old_quantity=1, new_quantity=1, at=20 * DAY)  # the credit rounds to 0 cents
def test_proration_is_exact_to_the_rounding_rule(
    engine: Engine, old: int, new: int, old_quantity: int, new_quantity: int, at: int
) -> None:
    async def scenario() -> None:
        first, second = await engine.price(old, "day", 30), await engine.price(new, "day", 30)
        clock_id, customer_id = await engine.clock_customer(T0)
        sub = await engine.subscribe(customer_id, first, old_quantity)
        await engine.advance(clock_id, T0 + at)
        async with engine.app.db.transaction() as tx:
            items = [SubscriptionItemIn(price_id=second, quantity=new_quantity)]
            await subscriptions.update(tx, engine.app.billing.call(False), sub["id"], SubscriptionUpdate(items=items))
        await engine.advance(clock_id, T0 + 30 * DAY)
        rows = await engine.invoices_of(sub["id"])
        for row in rows:
            assert row["total"] == sum(line["amount"] for line in row["lines"])
            assert row["amount_due"] == max(row["total"], 0)
        proration = [line for row in rows for line in row["lines"] if line["proration"]]
        remaining, period = 30 * DAY - at, 30 * DAY
        assert len(proration) == 2  # the old item's unused time, the new one's remaining time
        unit = {first: old, second: new}  # by price, not by sign: a credit can round to 0
        for line in proration:
            exact = Fraction(abs(line["amount"])) - Fraction(
                unit[line["price_id"]] * line["quantity"] * remaining, period
            )
            assert abs(exact) <= Fraction(1, 2)
        billed_first_period = old * old_quantity + sum(line["amount"] for line in proration)
        exact_cost = Fraction(old * old_quantity * at + new * new_quantity * remaining, period)
        assert abs(billed_first_period - exact_cost) <= 1

    engine.run(scenario())


@PROPERTY
@given(
    paid=st.integers(min_value=1, max_value=1_000_000),
    requests=st.lists(st.one_of(st.none(), st.integers(min_value=-5, max_value=1_200_000)), min_size=1, max_size=8),
)
def test_refunds_never_exceed_payments(engine: Engine, paid: int, requests: list[int | None]) -> None:
    async def scenario() -> None:
        one_time = await engine.price(paid, None)
        call = engine.app.billing.call(False)
        async with engine.app.db.transaction() as tx:
            session = await checkout.create(
                tx, call, CheckoutSessionCreate(mode="payment", line_items=[LineItem(price_id=one_time)])
            )
        async with engine.app.db.transaction() as tx:
            done = (await checkout.confirm(tx, call, session["id"], "pm_card_visa")).unwrap()
        refunded = 0
        for wanted in requests:
            amount = None if wanted is None else (f"{wanted // 100}.{wanted % 100:02d}" if wanted >= 0 else "-1")
            allowed = (paid - refunded > 0) if wanted is None else 0 < wanted <= paid - refunded
            try:
                async with engine.app.db.transaction() as tx:
                    refund = await refunds.create(
                        tx, call, done["payment_intent_id"], PaymentIntentRefund(amount=amount)
                    )
            except InvalidRequest:
                assert not allowed
                continue
            assert allowed
            refunded += (paid - refunded) if wanted is None else wanted
            assert refund["status"] == "succeeded"
        assert refunded <= paid

    engine.run(scenario())


@PROPERTY
@given(
    interval=st.sampled_from(["day", "week", "month", "year"]),
    count=st.integers(1, 3),
    anchor=st.integers(min_value=1_577_836_800, max_value=1_893_456_000),  # 2020 … 2030
    renewals=st.integers(1, 6),
)
def test_periods_are_contiguous_across_renewals(
    engine: Engine, interval: str, count: int, anchor: int, renewals: int
) -> None:
    async def scenario() -> None:
        plan = await engine.price(500, interval, count)
        clock_id, customer_id = await engine.clock_customer(anchor)
        sub = await engine.subscribe(customer_id, plan)
        # One boundary at a time: an advance is bounded (MAX_ADVANCE), a yearly plan is not.
        for n in range(1, renewals + 1):
            await engine.advance(clock_id, periods.add_interval(anchor, interval, count, n))
        rows = await engine.invoices_of(sub["id"])
        spans = [(row["period_start"], row["period_end"]) for row in rows]
        assert len(spans) == renewals + 1
        assert spans == [
            (periods.add_interval(anchor, interval, count, n), periods.add_interval(anchor, interval, count, n + 1))
            for n in range(renewals + 1)
        ]

    engine.run(scenario())

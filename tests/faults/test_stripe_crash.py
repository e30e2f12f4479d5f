"""SIGKILL of `paywire serve` between Stripe's answer and its record: never twice, never lost.

A real `paywire serve` charges through localstripe with `PAYWIRE_TEST_PAUSE_AFTER_CHARGE` set:
once the provider has answered, the process writes the file and waits there, before the
transaction that records the answer. The test kills it (SIGKILL), starts `paywire worker`
(whose scheduler runs the reconciler) and a new `serve` without the pause, and checks that the
charge was recorded exactly once: one succeeded PaymentIntent in localstripe, one
`payment_intent.succeeded` (and `invoice.paid`) in Paywire. PostgreSQL, as in production.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paywire.billing.charging import PAUSE_ENV
from paywire.billing.clock_advance import STALE_ADVANCE
from paywire.db.engine import Database
from paywire.db.schema import events, refunds, test_clocks
from tests.faults.harness import DAY, T0, Procs, make_key
from tests.stripe.conftest import TEST_KEY, LocalStripe, localstripe  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres


@pytest.fixture
def stripe_env(localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> LocalStripe:  # noqa: F811
    monkeypatch.setenv("PAYWIRE_STRIPE_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("PAYWIRE_STRIPE_API_BASE", localstripe.url)
    monkeypatch.setenv("PAYWIRE_CHARGE_GRACE_SECONDS", "1")
    return localstripe


@pytest.fixture
async def db(fault_url: str) -> AsyncIterator[Database]:
    database = Database(fault_url)
    yield database
    await database.dispose()


class Crash:
    def __init__(self, procs: Procs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str) -> None:
        self.procs, self.monkeypatch, self.key = procs, monkeypatch, key
        self.paused = tmp_path / "paused"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.procs.api_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    async def start(self, *, pause: bool = True) -> None:
        """(Re)start `serve` alone, pausing after each charge or not."""
        for proc in [self.procs.serve, *self.procs.workers]:
            self.procs.kill(proc)
        self.procs.workers.clear()
        if pause:
            self.monkeypatch.setenv(PAUSE_ENV, str(self.paused))
        else:
            self.monkeypatch.delenv(PAUSE_ENV, raising=False)
        await self.procs.start_serve()

    async def kill_during(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        """Send the request; once the server has Stripe's answer (and waits), SIGKILL it; then
        restart without the pause, with a worker (its scheduler runs the reconciler)."""
        async with self.client() as client:
            request = asyncio.create_task(client.request(method, path, json=body))
            deadline = time.monotonic() + 20
            while not self.paused.exists():
                assert not request.done(), f"answered without pausing: {request.result().text}"
                assert time.monotonic() < deadline, "the server never reached the pause"
                await asyncio.sleep(0.02)
            self.procs.kill(self.procs.serve)
            with pytest.raises(httpx.TransportError):
                await request
        self.paused.unlink()
        self.monkeypatch.delenv(PAUSE_ENV)
        self.procs.start_worker()
        await self.procs.start_serve()


async def _wait(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "not settled in time"
        await asyncio.sleep(0.2)


async def _types(db: Database, object_id: str) -> Counter[str]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(events.c.type).where(events.c.object_id == object_id))).scalars()
        return Counter(rows)


async def _setup(api: httpx.AsyncClient, amount: str, recurring: bool) -> str:
    product = (await api.post("/api/products", json={"name": "Plan"})).json()
    body: dict[str, Any] = {"product_id": product["id"], "unit_amount": amount, "currency": "usd"}
    if recurring:
        body["recurring"] = {"interval": "month"}
    return str((await api.post("/api/prices", json=body)).json()["id"])


@pytest.fixture
async def crash(
    fault_url: str, procs: Procs, stripe_env: LocalStripe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Crash:
    return Crash(procs, monkeypatch, tmp_path, await make_key(fault_url))


async def test_killed_after_checkout_charge_is_recorded_once(
    crash: Crash, db: Database, stripe_env: LocalStripe
) -> None:
    await crash.start()
    async with crash.client() as api:
        item = await _setup(api, "40.00", recurring=False)
        customer = (await api.post("/api/customers", json={"email": "k@example.com"})).json()
        session = (
            await api.post("/api/checkout-sessions", json={"mode": "payment", "customer_id": customer["id"],
                                                           "line_items": [{"price_id": item}]})
        ).json()  # fmt: skip
    await crash.kill_during(
        "POST", f"/api/checkout-sessions/{session['id']}/confirm", {"payment_method": "pm_card_visa"}
    )
    async with crash.client() as api:

        async def completed() -> dict[str, Any] | None:
            found = (await api.get(f"/api/checkout-sessions/{session['id']}")).json()
            return found if found["status"] == "complete" else None

        done = await _wait(completed)
        intent_id = done["payment_intent_id"]
        assert (await api.get(f"/api/payment-intents/{intent_id}")).json()["status"] == "succeeded"
        again = await api.post(
            f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"}
        )
        assert again.status_code == 409  # complete: nothing is charged again
    assert [p["status"] for p in await stripe_env.payment_intents(intent_id)] == ["succeeded"]
    assert (await _types(db, intent_id))["payment_intent.succeeded"] == 1
    assert (await _types(db, session["id"]))["checkout.session.completed"] == 1


async def test_killed_during_a_renewal_charges_once(crash: Crash, db: Database, stripe_env: LocalStripe) -> None:
    await crash.start(pause=False)
    async with crash.client() as api:
        plan = await _setup(api, "10.00", recurring=True)
        clock = (await api.post("/api/test-clocks", json={"frozen_time": T0})).json()
        customer = (
            await api.post("/api/customers", json={"email": "r@example.com", "test_clock_id": clock["id"]})
        ).json()
        sub = (
            await api.post("/api/subscriptions", json={"customer_id": customer["id"], "items": [{"price_id": plan}],
                                                       "default_payment_method": "pm_card_visa"})
        ).json()  # fmt: skip
        assert sub["status"] == "active", sub
    # The renewal job's charge: Stripe answers, the server is killed before recording it.
    await crash.start()
    renew_at = T0 + 32 * DAY
    await crash.kill_during("POST", f"/api/test-clocks/{clock['id']}/advance", {"frozen_time": renew_at})

    async def renewed() -> bool:
        return (await _types(db, sub["id"]))["customer.subscription.renewed"] == 1

    await _wait(renewed)  # the reconciler finished the renewal
    # The killed advance left the clock `advancing`: age the mark, advance again; the renewal
    # job was marked done with the charge's record, so it does not run (or charge) again.
    async with db.transaction() as tx:
        await tx.conn.execute(
            test_clocks.update()
            .where(test_clocks.c.id == clock["id"])
            .values(updated=test_clocks.c.updated - STALE_ADVANCE)
        )
    async with crash.client() as api:
        advanced = await api.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": renew_at})
        assert advanced.status_code == 200, advanced.text
        listed = (await api.get("/api/invoices", params={"subscription_id": sub["id"]})).json()["list"]
    cycle = [i for i in listed if i["billing_reason"] == "subscription_cycle"]
    assert len(cycle) == 1 and cycle[0]["status"] == "paid", listed
    intent_id = cycle[0]["payment_intent_id"]
    assert [p["status"] for p in await stripe_env.payment_intents(intent_id)] == ["succeeded"]
    assert (await _types(db, intent_id))["payment_intent.succeeded"] == 1
    assert (await _types(db, cycle[0]["id"]))["invoice.paid"] == 1
    assert (await _types(db, sub["id"]))["customer.subscription.renewed"] == 1


async def test_killed_after_refund_refunds_once(crash: Crash, db: Database, stripe_env: LocalStripe) -> None:
    await crash.start(pause=False)
    async with crash.client() as api:
        item = await _setup(api, "20.00", recurring=False)
        session = (
            await api.post("/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": item}]})
        ).json()
        done = (
            await api.post(f"/api/checkout-sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"})
        ).json()
    intent_id = done["payment_intent_id"]
    await crash.start()
    await crash.kill_during("POST", f"/api/payment-intents/{intent_id}/refund", {"amount": "5.00"})

    async def refunded() -> list[Any]:
        async with db.read() as conn:
            return list(
                (await conn.execute(sa.select(refunds).where(refunds.c.payment_intent_id == intent_id))).mappings()
            )

    rows = await _wait(lambda: _settled(refunded))
    assert [r["status"] for r in rows] == ["succeeded"]
    stripe_pi = (await stripe_env.payment_intents(intent_id))[0]["id"]
    assert [r["amount"] for r in await stripe_env.refunds(stripe_pi)] == [500]
    assert (await _types(db, rows[0]["id"]))["refund.succeeded"] == 1
    async with crash.client() as api:
        assert (await api.get(f"/api/payment-intents/{intent_id}")).json()["amount_refunded"] == "5.00"


async def _settled(rows: Any) -> list[Any] | None:
    found = await rows()
    return found if found and all(r["status"] != "pending" for r in found) else None

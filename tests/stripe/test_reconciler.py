"""The reconciler with the built-in test provider: a charge whose answer was lost (the provider
call raised after it charged) stays `processing`, the API answers 503 `payment_processing`, and
the reconciler settles it with the flow's events, once. A renewal's job is done with the record
of its charge: advancing again never charges the period again (an advance whose charge is not
answered answers 503 `payment_processing`, the clock at the renewal's time). SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from paywire.billing import reconcile
from paywire.providers.base import ChargeResult, ProviderUnavailable
from tests.conftest import Server
from tests.integration.test_billing_timelines import DAY, T0, Timeline, advance, clock_customer, ok, price


def lose_answers(server: Server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the test provider charge but lose its answer; returns the keys it was asked for."""
    provider = server.app.billing.provider
    real = provider.charge
    asked: list[str] = []

    async def lost(**kwargs: Any) -> ChargeResult:
        asked.append(kwargs["idempotency_key"])
        await real(**kwargs)
        raise ProviderUnavailable("the answer was lost")

    monkeypatch.setattr(provider, "charge", lost)
    return asked


async def settle_all(server: Server, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.undo()
    server.app.billing.charge_grace = 0.0
    return await reconcile.run(server.app.db, server.app.billing)


async def test_a_lost_answer_is_settled_by_the_reconciler_once(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = Timeline(api)
    plan = await price(api, "15.00")
    customer = await ok(api.post("/api/customers", json={"email": "r@example.com"}))
    await timeline.take()
    asked = lose_answers(server, monkeypatch)
    body = {"customer_id": customer["id"], "items": [{"price_id": plan}], "default_payment_method": "pm_card_visa"}
    answer = await api.post("/api/subscriptions", json=body)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "payment_processing", answer.text
    assert await timeline.types() == []  # nothing is told before the outcome is known
    [pending] = (await ok(api.get("/api/payment-intents", params={"status": "processing"})))["list"]
    assert (await ok(api.get("/api/subscriptions")))["count"] == 0
    again = await api.post("/api/subscriptions", json=body)  # a second try while it is in flight
    assert again.status_code == 409 and again.json()["error"]["code"] == "payment_in_progress"
    assert await settle_all(server, monkeypatch) == 1
    assert await settle_all(server, monkeypatch) == 0
    assert asked == [f"{pending['id']}/1"]
    assert await timeline.types() == [
        "customer.subscription.created", "payment_intent.succeeded", "invoice.paid", "customer.subscription.started",
    ]  # fmt: skip
    [sub] = (await ok(api.get("/api/subscriptions")))["list"]
    assert sub["status"] == "active"
    intent = await ok(api.get(f"/api/payment-intents/{pending['id']}"))
    assert intent["status"] == "succeeded" and intent["invoice_id"] == sub["latest_invoice_id"]


async def test_a_renewal_whose_answer_was_lost_is_not_charged_again(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeline = Timeline(api)
    plan = await price(api, "10.00")
    clock, customer = await clock_customer(api)
    sub = (await ok(api.post("/api/subscriptions", json={
        "customer_id": customer, "items": [{"price_id": plan}], "default_payment_method": "pm_card_visa",
    })))  # fmt: skip
    await timeline.take()
    asked = lose_answers(server, monkeypatch)
    # The renewal job ran; its charge is processing. The advance asks once more before it ends
    # (what the answer schedules must run in it), is not answered either, and says so.
    cut = await api.post(f"/api/test-clocks/{clock}/advance", json={"frozen_time": T0 + 31 * DAY})
    assert cut.status_code == 503 and cut.json()["error"]["code"] == "payment_processing", cut.text
    shown = await ok(api.get(f"/api/test-clocks/{clock}"))
    assert shown["status"] == "ready" and shown["frozen_time"] == T0 + 31 * DAY  # at the renewal's time
    assert await timeline.types() == []
    assert len(asked) == 2 and len(set(asked)) == 1  # the same idempotency key: one charge
    assert await settle_all(server, monkeypatch) == 1
    assert await timeline.types() == [
        "payment_intent.succeeded", "invoice.paid", "customer.subscription.renewed", "customer.subscription.updated",
    ]  # fmt: skip
    await advance(api, clock, T0 + 31 * DAY)  # due jobs again: the renewal is done
    assert await timeline.types() == []
    listed = (await ok(api.get("/api/invoices", params={"subscription_id": sub["id"]})))["list"]
    assert sorted(i["billing_reason"] for i in listed) == ["subscription_create", "subscription_cycle"]

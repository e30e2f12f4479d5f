"""Which provider serves each mode comes from the settings alone (providers/choose.py), and
live mode charges through Stripe only with a live key."""

from __future__ import annotations

import httpx
import pytest

from paywire.app import PaywireApp
from paywire.providers.choose import choose
from paywire.providers.stripe import StripeProvider
from paywire.providers.test import TestProvider
from paywire.settings import Settings, SettingsError
from tests.conftest import new_key, start_server, stop_server
from tests.integration.test_billing_timelines import ok, price
from tests.stripe.conftest import LIVE_KEY, LocalStripe, stripe_settings


def test_no_key_builtin_test_provider_and_no_live_provider() -> None:
    chosen = choose(Settings())
    assert isinstance(chosen.test, TestProvider) and chosen.live is None
    assert chosen.describe() == "test mode: built-in test provider; live mode: none (live charges are refused)"


def test_a_test_key_serves_test_mode_only() -> None:
    chosen = choose(Settings(stripe_secret_key="sk_test_x"))
    assert isinstance(chosen.test, StripeProvider) and chosen.live is None
    assert chosen.describe() == "test mode: stripe; live mode: none (live charges are refused)"
    builtin = choose(Settings(stripe_secret_key="sk_test_x", test_provider="builtin"))
    assert isinstance(builtin.test, TestProvider)


def test_a_live_key_serves_live_mode() -> None:
    chosen = choose(Settings(stripe_secret_key="sk_live_x"))
    assert isinstance(chosen.test, TestProvider) and isinstance(chosen.live, StripeProvider)
    with pytest.raises(SettingsError, match="PAYWIRE_TEST_PROVIDER"):
        choose(Settings(stripe_secret_key="sk_live_x", test_provider="stripe"))


async def test_live_mode_charges_through_stripe_with_a_live_key(database_url: str, localstripe: LocalStripe) -> None:
    app = PaywireApp(database_url, settings=stripe_settings(database_url, localstripe, key=LIVE_KEY))
    uv, task, url = await start_server(app)
    try:
        live_key = await new_key(app, live=True)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {live_key}"}) as live:
            plan = await price(live, "9.00")
            customer = await ok(live.post("/api/customers", json={"email": "live@example.com"}))
            sub = await ok(
                live.post("/api/subscriptions", json={"customer_id": customer["id"], "items": [{"price_id": plan}],
                                                      "default_payment_method": "pm_card_visa"})
            )  # fmt: skip
            assert sub["status"] == "active" and sub["livemode"] is True
            invoice = await ok(live.get(f"/api/invoices/{sub['latest_invoice_id']}"))
        found = await localstripe.payment_intents(invoice["payment_intent_id"])
        assert [(p["status"], p["amount"]) for p in found] == [("succeeded", 900)]
    finally:
        await stop_server(uv, task)

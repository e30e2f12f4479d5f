"""Which provider serves each mode, from the settings (never from code).

- **Live mode** charges through Stripe when `PAYWIRE_STRIPE_SECRET_KEY` is a live key
  (`sk_live_…` / `rk_live_…`); otherwise live mode has no provider and refuses every charge
  (a Stripe test key must never "pay" a live invoice).
- **Test mode** uses `PAYWIRE_TEST_PROVIDER`: `builtin` (the built-in test provider) or `stripe`
  (needs an `sk_test_…` key). Unset: Stripe with an `sk_test_…` key, else the built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass

from paywire.providers.base import PaymentProvider
from paywire.providers.test import TestProvider
from paywire.settings import Settings, SettingsError


@dataclass(frozen=True)
class Providers:
    test: PaymentProvider
    live: PaymentProvider | None

    def describe(self) -> str:
        live = self.live.name if self.live is not None else "none (live charges are refused)"
        return f"test mode: {_label(self.test)}; live mode: {live}"


def _label(provider: PaymentProvider) -> str:
    return "built-in test provider" if provider.name == "test" else provider.name


def choose(settings: Settings) -> Providers:
    key = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else None
    test_key = key is not None and key.startswith(("sk_test_", "rk_test_"))
    live_key = key is not None and key.startswith(("sk_live_", "rk_live_"))

    def stripe_provider() -> PaymentProvider:
        from paywire.providers.stripe import StripeProvider

        assert key is not None
        return StripeProvider(key, api_base=settings.stripe_api_base)

    wanted = settings.test_provider or ("stripe" if test_key else "builtin")
    if wanted == "stripe" and not test_key:
        raise SettingsError("setting test_provider (PAYWIRE_TEST_PROVIDER): stripe needs an sk_test_ Stripe secret key")
    test = stripe_provider() if wanted == "stripe" else TestProvider()
    return Providers(test, stripe_provider() if live_key else None)

"""The built-in test provider: behaves like a card processor for the contract's test cards.

- `pm_card_visa` pays.
- `pm_card_visa_chargeDeclined` is declined at once: it cannot be saved and every charge fails.
- `pm_card_chargeCustomerFail` can be saved, but every charge on it fails.

Every answer is a function of the call (a charge's id is derived from its idempotency key), so
asking again after a crash returns the same result and charges nothing twice.
"""

from __future__ import annotations

import hashlib

from paywire.providers.base import ChargeResult, PaymentError, ProviderCustomer, RefundResult, UnknownPaymentMethod

_DECLINED = PaymentError("card_declined", "generic_decline", "Your card was declined.")

# payment method → (error when saving it, error when charging it)
TEST_CARDS: dict[str, tuple[PaymentError | None, PaymentError | None]] = {
    "pm_card_visa": (None, None),
    "pm_card_visa_chargeDeclined": (_DECLINED, _DECLINED),
    "pm_card_chargeCustomerFail": (None, _DECLINED),
}


def _ref(prefix: str, key: str) -> str:
    # Derived from the idempotency key, so a retried call names the same charge.
    return f"{prefix}_test_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class TestProvider:
    name = "test"
    local = True  # answers in-process: no network, nothing to wait for
    __test__ = False  # not a pytest class

    def _card(self, payment_method: str) -> tuple[PaymentError | None, PaymentError | None]:
        try:
            return TEST_CARDS[payment_method]
        except KeyError:
            raise UnknownPaymentMethod(payment_method) from None

    async def ensure_customer(self, customer: ProviderCustomer) -> str | None:
        return None

    async def check(self, payment_method: str, *, customer_ref: str | None = None) -> PaymentError | None:
        return self._card(payment_method)[0]

    async def charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        customer_ref: str | None = None,
        off_session: bool = False,
        charge_ref: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ChargeResult:
        error = self._card(payment_method)[1]
        if error is not None:
            return ChargeResult(False, error=error)
        return ChargeResult(True, charge_ref=_ref("ch", idempotency_key))

    async def refund(self, *, charge_ref: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        return RefundResult(True, refund_ref=_ref("rf", idempotency_key))

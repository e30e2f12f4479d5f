"""The interface every payment provider implements (the built-in test one, later real ones).

The engine asks three things: can this payment method be saved, charge it, refund a charge.
A decline is a normal result, not an exception; an unknown payment method is the caller's
mistake and raises `UnknownPaymentMethod` (the API answers 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PaymentError:
    """Why a payment method was declined; becomes `last_payment_error` on the payment intent."""

    code: str
    decline_code: str | None
    message: str

    def as_dict(self, payment_method: str | None) -> dict[str, str | None]:
        return {
            "type": "card_error",
            "code": self.code,
            "decline_code": self.decline_code,
            "message": self.message,
            "payment_method": payment_method,
        }


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    charge_ref: str | None = None  # the provider's id of the charge, for refunds
    error: PaymentError | None = None


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    refund_ref: str | None = None
    error: PaymentError | None = None


class UnknownPaymentMethod(Exception):
    def __init__(self, payment_method: str) -> None:
        super().__init__(f"no such payment method: {payment_method!r}")
        self.payment_method = payment_method


class PaymentProvider(Protocol):
    name: str

    async def check(self, payment_method: str) -> PaymentError | None:
        """Whether `payment_method` can be saved for later charges (None: it can)."""
        ...

    async def charge(self, *, payment_method: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Charge `amount` minor units; the same `idempotency_key` never charges twice."""
        ...

    async def refund(self, *, charge_ref: str, amount: int, currency: str, idempotency_key: str) -> RefundResult: ...

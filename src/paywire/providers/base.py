"""The interface every payment provider implements (the built-in test one, Stripe, yours).

The engine asks: can this payment method be saved (for this customer), charge it, refund a
charge. A decline is a normal result, not an exception; an unknown payment method is the
caller's mistake and raises `UnknownPaymentMethod` (the API answers 400).

The engine never calls a provider inside a database transaction (billing/charging.py). It
records the charge as `processing` first and may ask again after a crash: the same call with
the same `idempotency_key` must return the same result and never charge twice. A provider
whose processor forgets keys (Stripe, after 24 hours) also has `create_charge(...)`, which
makes the charge unconfirmed and returns its reference: the engine stores it before calling
`charge(charge_ref=…)`, which confirms that one charge (billing/charging.py `call_provider`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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
    """A charge's outcome: `succeeded`; a decline (`error`); `next_action` when the payer must
    authenticate first (3-D Secure); `pending` when the provider has not decided yet."""

    succeeded: bool
    charge_ref: str | None = None  # the provider's id of the charge, for refunds
    error: PaymentError | None = None
    next_action: dict[str, Any] | None = None
    pending: bool = False

    @property
    def status(self) -> str:
        if self.succeeded:
            return "succeeded"
        if self.next_action is not None:
            return "requires_action"
        if self.pending:
            return "processing"
        return "failed"


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    refund_ref: str | None = None
    error: PaymentError | None = None
    pending: bool = False


@dataclass(frozen=True)
class ProviderCustomer:
    """The customer a payment method is saved to: ours, and the provider's (None: not made yet)."""

    id: str
    email: str | None
    ref: str | None


class UnknownPaymentMethod(Exception):
    def __init__(self, payment_method: str) -> None:
        super().__init__(f"no such payment method: {payment_method!r}")
        self.payment_method = payment_method


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered an error that is not a decline; the
    outcome of a charge is then unknown and the reconciler asks again later."""


class PaymentProvider(Protocol):
    name: str

    async def ensure_customer(self, customer: ProviderCustomer) -> str | None:
        """The provider's customer for `customer` (made on first need); None if it has none."""
        ...

    async def check(self, payment_method: str, *, customer_ref: str | None = None) -> PaymentError | None:
        """Whether `payment_method` can be saved for later charges (None: it can); with a
        `customer_ref`, save it to that customer."""
        ...

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
        """Charge `amount` minor units; the same `idempotency_key` never charges twice.

        `charge_ref` names the provider's charge of an earlier attempt that needed the payer's
        action: the provider continues that one instead of starting another."""
        ...

    async def refund(self, *, charge_ref: str, amount: int, currency: str, idempotency_key: str) -> RefundResult: ...

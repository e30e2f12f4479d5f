"""A declined card, as the API reports it: 402 `card_error`, with the payment intent if there is one.

Like Stripe, a decline during a call that charged (checkout confirm, an upgrade, paying an
invoice) first commits what happened — the failed payment intent and its
`payment_intent.payment_failed` event — and then answers 402 naming that payment intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from paywire.billing import charge_step
from paywire.billing.runtime import Call
from paywire.db.engine import Tx
from paywire.errors import CardDeclined, InvalidRequest
from paywire.providers.base import UnknownPaymentMethod

T = TypeVar("T")


class Declined(CardDeclined):
    def __init__(self, error: dict[str, Any], payment_intent: dict[str, Any] | None = None) -> None:
        super().__init__(str(error.get("message") or "Your card was declined."), param="payment_method")
        self.code = str(error.get("code") or "card_declined")
        self.decline_code = error.get("decline_code")
        self.payment_intent = payment_intent

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["decline_code"] = self.decline_code
        body["error"]["payment_intent"] = self.payment_intent
        return body


@dataclass(frozen=True)
class Declinable(Generic[T]):
    """A call's result, and the decline to report once its transaction has committed."""

    value: T
    declined: Declined | None = None

    def unwrap(self) -> T:
        if self.declined is not None:
            raise self.declined
        return self.value


async def check_payment_method(
    call: Call,
    payment_method: str,
    param: str,
    *,
    saving: bool = True,
    tx: Tx | None = None,
    customer_id: str | None = None,
    customer_ref: str | None = None,
) -> None:
    """400 for an unknown payment method; when `saving` it, 402 for one that cannot be saved.
    With a customer, the provider saves it to that customer's provider account (made on first
    need). Under the charge step the provider is asked between transactions."""
    ref = customer_ref  # the provider's customer, named directly (one that is not ours yet)
    if ref is None and tx is not None:
        ref = await charge_step.customer_ref(tx, call, customer_id)
    provider = call.provider

    async def question() -> dict[str, Any] | None:
        try:
            error = await provider.check(payment_method, customer_ref=ref)
        except UnknownPaymentMethod:
            return {"unknown": True}
        return error.as_dict(payment_method) if error is not None else None

    answer = await charge_step.ask(call, f"check:{payment_method}:{ref}", question)
    if answer is not None and answer.get("unknown"):
        raise InvalidRequest(str(UnknownPaymentMethod(payment_method)), param=param, code="resource_missing")
    if answer is not None and saving:
        raise Declined(answer)

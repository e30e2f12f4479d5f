"""Stripe as the payment provider, through the official `stripe` package (async client).

- A customer's payment methods are saved to a Stripe Customer, made on first need (its id is
  kept on our customer row: `provider_customer_ref`).
- A charge is one PaymentIntent, made in two steps so that asking again never charges twice,
  even after Stripe forgot the idempotency key (24 hours): `create_charge` creates it
  unconfirmed (no money moves; key `paywire/<key>/create`) and the engine stores its id; `charge`
  then retrieves it by that id and confirms it (`off_session=true` for renewals, retries and
  other merchant-initiated charges). Asked again, `charge` finds it already confirmed.
- A decline is Stripe's card error: `code`, `decline_code` and message become the payment
  intent's `last_payment_error`. A PaymentIntent that `requires_action` (3-D Secure) is
  returned as `next_action` with its `client_secret`; the payer's next confirm continues it.
- Refunds are Stripe Refunds of the PaymentIntent, with the refund's id as idempotency key.
- An error that is not a decline (network, Stripe 5xx, rate limit) raises
  `ProviderUnavailable`: the charge stays `processing` and the reconciler asks again.
"""

from __future__ import annotations

from typing import Any

import stripe

from paywire.providers.base import (
    ChargeResult,
    PaymentError,
    ProviderCustomer,
    ProviderUnavailable,
    RefundResult,
    UnknownPaymentMethod,
)

_SUCCEEDED = ("succeeded", "requires_capture")
_AUTHENTICATION_REQUIRED = PaymentError(
    "authentication_required", "authentication_required", "Your card was declined: it requires authentication."
)


def _error(exc: stripe.StripeError) -> PaymentError:
    err = exc.error
    code = (getattr(err, "code", None) if err is not None else None) or exc.code or "card_declined"
    decline = getattr(err, "decline_code", None) if err is not None else None
    message = (getattr(err, "message", None) if err is not None else None) or exc.user_message or "Declined."
    return PaymentError(str(code), str(decline) if decline else None, str(message))


def _next_action(intent: Any) -> dict[str, Any]:
    action = getattr(intent, "next_action", None)
    kind = getattr(action, "type", None) if action is not None else None
    return {"type": kind or "use_stripe_sdk", "client_secret": getattr(intent, "client_secret", None)}


class StripeProvider:
    name = "stripe"
    local = False

    def __init__(
        self, secret_key: str, *, api_base: str = "https://api.stripe.com", timeout: float = 30.0, retries: int = 2
    ) -> None:
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base},
            http_client=stripe.HTTPXClient(timeout=timeout),
            max_network_retries=retries,
        )
        self.test_mode = secret_key.startswith(("sk_test_", "rk_test_"))

    async def ensure_customer(self, customer: ProviderCustomer) -> str | None:
        if customer.ref:
            return customer.ref
        params: dict[str, Any] = {"metadata": {"paywire_customer": customer.id}}
        if customer.email:
            params["email"] = customer.email
        try:
            made = await self.client.v1.customers.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"paywire-customer/{customer.id}"},
            )
        except stripe.StripeError as exc:
            raise ProviderUnavailable(str(exc)) from exc
        return str(made.id)

    async def check(self, payment_method: str, *, customer_ref: str | None = None) -> PaymentError | None:
        try:
            if customer_ref is None:
                await self.client.v1.payment_methods.retrieve_async(payment_method)
                return None
            found = await self.client.v1.payment_methods.retrieve_async(payment_method)
            if getattr(found, "customer", None) == customer_ref:
                return None
            await self.client.v1.payment_methods.attach_async(payment_method, {"customer": customer_ref})
            return None
        except stripe.CardError as exc:
            return _error(exc)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or (exc.code == "resource_missing"):
                raise UnknownPaymentMethod(payment_method) from exc
            return _error(exc)
        except stripe.StripeError as exc:
            raise ProviderUnavailable(str(exc)) from exc

    async def create_charge(
        self,
        *,
        payment_method: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        customer_ref: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str | None:
        """The PaymentIntent of a charge, created unconfirmed (no money moves); its id, or None
        when Stripe refuses to create it (then `charge` creates and confirms in one call, and
        reports the refusal as it would)."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "metadata": {**(metadata or {}), "paywire_idempotency_key": idempotency_key},
        }
        if customer_ref is not None:
            params["customer"] = customer_ref
        try:
            made = await self.client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"paywire/{idempotency_key}/create"},
            )
        except (stripe.CardError, stripe.InvalidRequestError):
            return None
        except stripe.StripeError as exc:
            raise ProviderUnavailable(str(exc)) from exc
        return str(made.id)

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
        try:
            if charge_ref is not None:  # made by create_charge, or one that needed the payer's action
                intent = await self.client.v1.payment_intents.retrieve_async(charge_ref)
                if intent.status == "requires_confirmation":
                    # On-session, Stripe.js runs a 3-D Secure step (`handleNextAction`) for an intent
                    # confirmed server-side with `use_stripe_sdk`, as Stripe documents for that flow.
                    confirm: dict[str, Any] = {"off_session": True} if off_session else {"use_stripe_sdk": True}
                    intent = await self.client.v1.payment_intents.confirm_async(
                        charge_ref,
                        confirm,  # type: ignore[arg-type]
                        {"idempotency_key": f"paywire/{idempotency_key}/confirm"},
                    )
                if intent.status in ("requires_payment_method", "canceled") and intent.payment_method is None:
                    charge_ref = None  # authentication failed: a new PaymentIntent below
                else:
                    return self._result(intent, off_session)
            params: dict[str, Any] = {
                "amount": amount,
                "currency": currency,
                "payment_method": payment_method,
                "confirm": True,
                "payment_method_types": ["card"],
                "metadata": {**(metadata or {}), "paywire_idempotency_key": idempotency_key},
            }
            if customer_ref is not None:
                params["customer"] = customer_ref
            if off_session:
                params["off_session"] = True
            intent = await self.client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"paywire/{idempotency_key}"},
            )
            return self._result(intent, off_session)
        except stripe.CardError as exc:
            ref = None
            err = exc.error
            failed = getattr(err, "payment_intent", None) if err is not None else None
            if failed is not None:
                ref = getattr(failed, "id", None)
                if getattr(failed, "status", None) == "requires_action" and not off_session:
                    return ChargeResult(False, charge_ref=ref, next_action=_next_action(failed))
            return ChargeResult(False, charge_ref=ref, error=_error(exc))
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise UnknownPaymentMethod(payment_method) from exc
            if exc.http_status == 402 or exc.code in ("card_declined", "authentication_required"):
                return ChargeResult(False, error=_error(exc))
            raise ProviderUnavailable(str(exc)) from exc
        except stripe.StripeError as exc:
            raise ProviderUnavailable(str(exc)) from exc

    @staticmethod
    def _result(intent: Any, off_session: bool) -> ChargeResult:
        status = intent.status
        if status in _SUCCEEDED:
            return ChargeResult(True, charge_ref=str(intent.id))
        if status == "requires_action" and off_session:  # nobody is there to authenticate
            return ChargeResult(False, charge_ref=str(intent.id), error=_AUTHENTICATION_REQUIRED)
        if status == "requires_action":
            return ChargeResult(False, charge_ref=str(intent.id), next_action=_next_action(intent))
        if status == "processing":
            return ChargeResult(False, charge_ref=str(intent.id), pending=True)
        last = getattr(intent, "last_payment_error", None)
        error = PaymentError(
            str(getattr(last, "code", None) or "card_declined"),
            getattr(last, "decline_code", None),
            str(getattr(last, "message", None) or "Your card was declined."),
        )
        return ChargeResult(False, charge_ref=str(intent.id), error=error)

    async def refund(self, *, charge_ref: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        try:
            made = await self.client.v1.refunds.create_async(
                {"payment_intent": charge_ref, "amount": amount, "metadata": {"paywire_refund": idempotency_key}},
                {"idempotency_key": f"paywire/{idempotency_key}"},
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status in (400, 402):
                return RefundResult(False, error=_error(exc))
            raise ProviderUnavailable(str(exc)) from exc
        except stripe.StripeError as exc:
            raise ProviderUnavailable(str(exc)) from exc
        status = made.status
        if status == "succeeded":
            return RefundResult(True, refund_ref=str(made.id))
        if status in ("pending", "requires_action"):
            return RefundResult(False, refund_ref=str(made.id), pending=True)
        reason = getattr(made, "failure_reason", None) or "the refund failed"
        return RefundResult(False, refund_ref=str(made.id), error=PaymentError("refund_failed", None, str(reason)))

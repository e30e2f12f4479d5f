"""What the billing engine needs from outside: the wall clock, the payment provider, the minter.

`Billing` is built once per `PaywireApp`; `Call` adds the caller's mode and request for one
API call or one scheduled job, and, while a flow runs under the charge step
(`billing/charging.py`), that `Step`: the provider's answers so far and the time the flow reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paywire.clock import SYSTEM_CLOCK, Clock
from paywire.errors import InvalidRequest
from paywire.events.log import RequestInfo
from paywire.minting.base import Minter
from paywire.minting.signed_receipt import SignedReceiptMinter
from paywire.providers.base import ChargeResult, PaymentProvider
from paywire.providers.test import TestProvider


@dataclass
class Billing:
    """`provider` serves test mode; live mode charges only through `live_provider`, which the
    settings choose (providers/choose.py: Stripe with a live key). Without one every live-mode
    charge is refused: test cards must never "pay" a live invoice."""

    clock: Clock = SYSTEM_CLOCK
    provider: PaymentProvider = field(default_factory=TestProvider)
    live_provider: PaymentProvider | None = None
    minter: Minter = field(default_factory=SignedReceiptMinter)
    # A charge left `processing` this long (a crash between the provider's answer and its
    # record) is settled by the reconciler, which asks the provider again.
    charge_grace: float = 60.0

    def call(self, livemode: bool, request: RequestInfo | None = None) -> Call:
        return Call(self, livemode, request)


@dataclass
class Charged:
    """In the finish pass: the charge the provider answered, for the flow to take."""

    intent_id: str
    attempt: int
    payment_method: str
    result: ChargeResult
    new: bool  # the flow created this intent in that run (it emits `payment_intent.created`)
    built: bool = False
    taken: bool = False


@dataclass
class Step:
    """A flow's run under the charge step (billing/charging.py), shared by its passes."""

    now: float
    answers: dict[str, Any] = field(default_factory=dict)
    charged: Charged | None = None
    local: bool = False  # the provider answers in-process: ask at once, no extra pass
    customer_ref: str | None = None  # the provider's customer to charge when the intent has none of ours


@dataclass(frozen=True)
class Call:
    billing: Billing
    livemode: bool
    request: RequestInfo | None = None
    step: Step | None = None

    @property
    def provider(self) -> PaymentProvider:
        if not self.livemode:
            return self.billing.provider
        if self.billing.live_provider is None:
            raise InvalidRequest(
                "live mode has no payment provider: set PAYWIRE_STRIPE_SECRET_KEY to a live Stripe key (sk_live_…)",
                code="livemode_provider_missing",
            )
        return self.billing.live_provider

    def wall_now(self) -> float:
        # Under the charge step every pass of a flow reads the same time.
        if self.step is not None:
            return self.step.now
        return self.billing.clock.now()

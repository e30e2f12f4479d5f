"""What the billing engine needs from outside: the wall clock, the payment provider, the minter.

`Billing` is built once per `PaywireApp`; `Call` adds the caller's mode and request for one
API call or one scheduled job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paywire.clock import SYSTEM_CLOCK, Clock
from paywire.events.log import RequestInfo
from paywire.minting.base import Minter
from paywire.minting.signed_receipt import SignedReceiptMinter
from paywire.providers.base import PaymentProvider
from paywire.providers.test import TestProvider


@dataclass
class Billing:
    clock: Clock = SYSTEM_CLOCK
    provider: PaymentProvider = field(default_factory=TestProvider)
    minter: Minter = field(default_factory=SignedReceiptMinter)

    def call(self, livemode: bool, request: RequestInfo | None = None) -> Call:
        return Call(self, livemode, request)


@dataclass(frozen=True)
class Call:
    billing: Billing
    livemode: bool
    request: RequestInfo | None = None

    @property
    def provider(self) -> PaymentProvider:
        return self.billing.provider

    def wall_now(self) -> float:
        return self.billing.clock.now()

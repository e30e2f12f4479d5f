"""Payment providers: where card logic lives. The billing engine only sees this interface."""

from paywire.providers.base import ChargeResult, PaymentError, PaymentProvider, RefundResult
from paywire.providers.test import TestProvider

__all__ = ["ChargeResult", "PaymentError", "PaymentProvider", "RefundResult", "TestProvider"]

"""The Python SDK: `Paywire` (sync) and `AsyncPaywire`, on httpx. See docs/sdk.md.

`Paywire()` reads `PAYWIRE_API_KEY` and `PAYWIRE_URL`; then, as in the original SDK,
`payment.webhook_endpoints.list(page=1, size=100)`, `.create(url=…, enabled_events=[…])`, …
"""

from paywire.sdk.client import AsyncPaywire, Paywire
from paywire.sdk.errors import (
    APIConnectionError,
    AuthenticationError,
    CardError,
    ConflictError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    PaywireAPIError,
    RateLimitError,
    ServerError,
)
from paywire.sdk.models import AsyncListResult, DeletedObject, ListResult, PaywireObject
from paywire.sdk.retries import RetryPolicy

__all__ = [
    "APIConnectionError",
    "AsyncListResult",
    "AsyncPaywire",
    "AuthenticationError",
    "CardError",
    "ConflictError",
    "DeletedObject",
    "IdempotencyError",
    "InvalidRequestError",
    "ListResult",
    "NotFoundError",
    "Paywire",
    "PaywireAPIError",
    "PaywireObject",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
]

"""Standard Webhooks for Paywire: sign deliveries and verify them on the receiver side.

Standard library only; framework helpers live in `paywire.webhooks.fastapi`, `.flask` and `.django`.
"""

from paywire.webhooks.signing import generate_secret, sign, signature_headers
from paywire.webhooks.verify import WebhookVerificationError, verify

__all__ = ["WebhookVerificationError", "generate_secret", "sign", "signature_headers", "verify"]

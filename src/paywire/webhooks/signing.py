"""Standard Webhooks signing: secrets and the `webhook-*` headers (standard library only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence
from functools import lru_cache

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """Return a new endpoint secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


@lru_cache(maxsize=256)
def secret_key_bytes(secret: str) -> bytes:
    """Decode a `whsec_…` secret (prefix optional, padding optional) to its HMAC key."""
    if not isinstance(secret, str):
        raise ValueError(f"webhook secret must be a str, not {type(secret).__name__}")
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("malformed webhook secret: expected 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("malformed webhook secret: the key is empty")
    return key


@lru_cache(maxsize=256)
def _mac_template(secret: str) -> hmac.HMAC:
    """A keyed HMAC-SHA256 with nothing fed in yet; `.copy()` it to skip re-keying per message."""
    return hmac.new(secret_key_bytes(secret), digestmod=hashlib.sha256)


def _as_list(secrets: Sequence[str] | str) -> Sequence[str]:
    return (secrets,) if isinstance(secrets, str) else secrets


def sign(secrets: Sequence[str] | str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` value: one `v1,<sig>` per secret, space-separated."""
    templates = [_mac_template(s) for s in _as_list(secrets)]
    if not templates:
        raise ValueError("at least one webhook secret is required")
    prefix = f"{msg_id}.{int(timestamp)}.".encode()
    signatures = []
    for template in templates:
        mac = template.copy()
        mac.update(prefix)
        mac.update(body)
        signatures.append("v1," + base64.b64encode(mac.digest()).decode("ascii"))
    return " ".join(signatures)


def signature_headers(secrets: Sequence[str] | str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }

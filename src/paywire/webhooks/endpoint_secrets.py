"""An endpoint's stored secrets read back: the associated data each is encrypted under, and the
secrets a delivery signs with (the current one, then the rotated-out ones not yet expired)."""

from __future__ import annotations

from typing import Any

from paywire.secrets_at_rest import Keyring, SecretsError, is_encrypted


def secret_aad(endpoint_id: str) -> str:
    """Associated data of an endpoint's current secret: it decrypts in no other row or column."""
    return f"webhook_endpoints.secret:{endpoint_id}"


def config_aad(endpoint_id: str) -> str:
    """Associated data of a destination's config (its connection string may hold credentials)."""
    return f"webhook_endpoints.config:{endpoint_id}"


def previous_aad(endpoint_id: str) -> str:
    return f"webhook_endpoints.previous_secrets:{endpoint_id}"


def valid_secrets(m: Any, now: float, keyring: Keyring | None = None, *, cached: bool = False) -> list[str]:
    """The current secret, then every rotated-out one that has not expired: one signature each.

    `m` is the endpoint's row; its stored secrets are decrypted with `keyring` (`cached`: with
    its cache, as the delivery path does). Without a keyring only plain values can be read.
    """
    if keyring is None:
        stored = [m["secret"]] + [s["secret"] for s in m["previous_secrets"] if s["expires"] > now]
        if any(is_encrypted(value) for value in stored):
            raise SecretsError("valid_secrets needs the keyring to read encrypted secrets")
        return stored
    decrypt = keyring.decrypt_cached if cached else keyring.decrypt
    current = decrypt(m["secret"], secret_aad(m["id"]))
    aad = previous_aad(m["id"])
    return [current] + [decrypt(s["secret"], aad) for s in m["previous_secrets"] if s["expires"] > now]

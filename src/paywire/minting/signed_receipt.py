"""`SignedReceiptMinter`: a verifiable token, not a blockchain NFT.

The token is an Ed25519-signed receipt of the purchase: `pwr1.<payload>.<signature>` (both
base64url). Anyone can verify it with the public key served at `GET /api/nft/public-key` and
`verify_receipt` below (or any Ed25519 library). The key pair is created on first use and kept
in the database, so every Paywire process signs with the same key; the private key is stored
encrypted (`paywire.secrets_at_rest`, the row's name in its associated data).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db import dialect
from paywire.db.engine import Tx
from paywire.db.schema import minter_keys
from paywire.minting.base import MintRequest
from paywire.secrets_at_rest import Keyring

PREFIX = "pwr1"
KEY_NAME = "signed_receipt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def private_key_aad(name: str) -> str:
    return f"minter_keys.private_key:{name}"


async def signing_key(conn: AsyncConnection, keyring: Keyring) -> tuple[str, Ed25519PrivateKey]:
    """(kid, key), created on first use; concurrent first uses agree on the stored one."""
    row = (await conn.execute(sa.select(minter_keys).where(minter_keys.c.name == KEY_NAME))).first()
    if row is None:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes_raw()
        kid = "key_" + secrets.token_hex(8)
        stored = keyring.encrypt(_b64(raw), private_key_aad(KEY_NAME))
        values = {"name": KEY_NAME, "kid": kid, "private_key": stored, "created": int(time.time())}
        insert = dialect.insert_for(minter_keys, dialect.is_postgres(conn))
        await conn.execute(insert.values(**values).on_conflict_do_nothing())
        row = (await conn.execute(sa.select(minter_keys).where(minter_keys.c.name == KEY_NAME))).first()
        assert row is not None
    private = keyring.decrypt_cached(row.private_key, private_key_aad(KEY_NAME))
    return row.kid, Ed25519PrivateKey.from_private_bytes(_unb64(private))


def public_key_info(kid: str, key: Ed25519PrivateKey) -> dict[str, str]:
    public = key.public_key()
    return {
        "object": "nft_public_key",
        "kid": kid,
        "algorithm": "Ed25519",
        "public_key": _b64(public.public_bytes_raw()),
        "public_key_pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(),
        "token_format": f"{PREFIX}.<base64url(JSON payload)>.<base64url(Ed25519 signature of the first two parts)>",
    }


def verify_receipt(token: str, public_key: str) -> dict[str, Any]:
    """The payload of a valid receipt; ValueError if the token is malformed or forged.

    `public_key` is the base64url raw key from `GET /api/nft/public-key`.
    """
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise ValueError("not a Paywire signed receipt")
    key = Ed25519PublicKey.from_public_bytes(_unb64(public_key))
    try:
        key.verify(_unb64(parts[2]), f"{PREFIX}.{parts[1]}".encode())
    except InvalidSignature:
        raise ValueError("signature does not verify") from None
    payload: dict[str, Any] = json.loads(_unb64(parts[1]))
    return payload


class SignedReceiptMinter:
    name = "signed_receipt"

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring  # None: the keyring of the transaction's database

    async def mint(self, tx: Tx, request: MintRequest) -> dict[str, Any]:
        kid, key = await signing_key(tx.conn, self.keyring or tx.keyring)
        session = request.session
        payload = {
            "typ": "paywire.nft_receipt",
            "kid": kid,
            "token_id": "nft_" + session["id"].removeprefix("cs_"),
            "checkout_session_id": session["id"],
            "customer_id": session["customer_id"],
            "payment_intent_id": session["payment_intent_id"],
            "subscription_id": session["subscription_id"],
            "amount_total": session["amount_total"],
            "currency": session["currency"],
            "line_items": [{"price_id": i["price_id"], "quantity": i["quantity"]} for i in session["line_items"]],
            "livemode": request.livemode,
            "iat": int(request.now),
        }
        body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        # Ed25519 is deterministic: a retried job produces the very same token.
        token = f"{PREFIX}.{body}.{_b64(key.sign(f'{PREFIX}.{body}'.encode()))}"
        return {
            "minter": self.name,
            "token_id": payload["token_id"],
            "token": token,
            "kid": kid,
            "algorithm": "Ed25519",
            "public_key_url": "/api/nft/public-key",
        }

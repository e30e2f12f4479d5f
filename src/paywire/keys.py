"""Secret API keys: `sk_test_…` / `sk_live_…`, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.schema import api_keys
from paywire.ids import new_id


@dataclass(frozen=True)
class ApiKey:
    id: str
    livemode: bool


def _hash(key: str) -> str:
    # Keys carry 256 random bits, so a plain hash is enough (no salt or slow KDF needed).
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(conn: AsyncConnection, *, livemode: bool, now: float) -> str:
    """Store a new key and return it: the only time it is ever seen whole."""
    key = f"sk_{'live' if livemode else 'test'}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        api_keys.insert(),
        {
            "id": new_id("key"),
            "key_hash": _hash(key),
            "livemode": livemode,
            "hint": key[:8] + "…" + key[-4:],
            "created": int(now),
        },
    )
    return key


async def authenticate(conn: AsyncConnection, key: str) -> ApiKey | None:
    """The key's identity and mode, or None for an unknown or revoked key."""
    if not key.startswith(("sk_test_", "sk_live_")):
        return None
    row = (
        await conn.execute(
            sa.select(api_keys.c.id, api_keys.c.livemode).where(
                api_keys.c.key_hash == _hash(key), api_keys.c.revoked.is_(None)
            )
        )
    ).first()
    return ApiKey(row.id, row.livemode) if row else None


async def revoke_key(conn: AsyncConnection, key: str, *, now: float) -> bool:
    """Revoke a live key; False if it is unknown or already revoked (its revocation time stays)."""
    result = await conn.execute(
        api_keys.update()
        .where(api_keys.c.key_hash == _hash(key), api_keys.c.revoked.is_(None))
        .values(revoked=int(now))
    )
    return bool(result.rowcount)


async def has_keys(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)))

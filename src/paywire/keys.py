"""Secret API keys: `sk_test_…` / `sk_live_…`, stored only as SHA-256 hashes.

The API authenticates every request, so `authenticate_cached` keeps a key it found for
`CACHE_SECONDS` in this process (by its hash, never the key itself) instead of reading it on a
checkout of its own each time. A revoked key therefore stops working within `CACHE_SECONDS` in
every server process, and at once in a process that revokes it through `revoke_key`. Unknown
and revoked keys are never kept: each such request reads the database.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.engine import Database
from paywire.db.schema import api_keys
from paywire.ids import new_id

CACHE_SECONDS = 2.0
CACHE_LIMIT = 10_000  # distinct valid keys kept at most; beyond it the cache starts over


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


class _Cached(NamedTuple):
    database: str  # the URL it was read from: one process may talk to several databases
    key: ApiKey
    until: float  # time.monotonic()


_cache: dict[str, _Cached] = {}


async def authenticate_cached(db: Database, key: str) -> ApiKey | None:
    """`authenticate`, answered from this process's cache when it found the key lately."""
    if not key.startswith(("sk_test_", "sk_live_")):
        return None
    key_hash = _hash(key)
    cached = _cache.get(key_hash)
    now = time.monotonic()
    if cached is not None and cached.database == db.url and now < cached.until:
        return cached.key
    async with db.read() as conn:
        found = await authenticate(conn, key)
    if found is None:
        _cache.pop(key_hash, None)
    else:
        if len(_cache) >= CACHE_LIMIT:
            _cache.clear()
        _cache[key_hash] = _Cached(db.url, found, now + CACHE_SECONDS)
    return found


async def revoke_key(conn: AsyncConnection, key: str, *, now: float) -> bool:
    """Revoke a live key; False if it is unknown or already revoked (its revocation time stays)."""
    key_hash = _hash(key)
    result = await conn.execute(
        api_keys.update().where(api_keys.c.key_hash == key_hash, api_keys.c.revoked.is_(None)).values(revoked=int(now))
    )
    _cache.pop(key_hash, None)
    return bool(result.rowcount)


async def has_keys(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)))

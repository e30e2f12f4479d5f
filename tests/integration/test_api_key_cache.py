"""The in-process cache of API key lookups: how long a key revoked elsewhere keeps working."""

from __future__ import annotations

import time

import pytest

from paywire import keys
from paywire.app import PaywireApp
from paywire.db.schema import api_keys
from tests.conftest import new_key


async def test_a_key_revoked_here_stops_at_once(paywire: PaywireApp) -> None:
    key = await new_key(paywire)
    assert await keys.authenticate_cached(paywire.db, key) is not None
    async with paywire.db.transaction() as tx:
        assert await keys.revoke_key(tx.conn, key, now=time.time())
    assert await keys.authenticate_cached(paywire.db, key) is None


async def test_a_key_revoked_elsewhere_stops_within_the_cache_bound(
    paywire: PaywireApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await new_key(paywire)
    found = await keys.authenticate_cached(paywire.db, key)
    async with paywire.db.transaction() as tx:  # another process's revocation: this cache is not told
        await tx.conn.execute(api_keys.update().values(revoked=int(time.time())))
    assert await keys.authenticate_cached(paywire.db, key) == found
    later = time.monotonic() + keys.CACHE_SECONDS
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert await keys.authenticate_cached(paywire.db, key) is None

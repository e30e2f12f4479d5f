"""What encrypted endpoint secrets cost a claim: 100 endpoints, one due delivery each, on SQLite.

    .venv/bin/python bench/secrets_at_rest.py [--endpoints 100] [--rounds 200]

Each round makes every delivery due again and claims them all (one `claim_from`), three ways:
secrets stored plain (as before encryption), encrypted with a cold cache (a new keyring each
round: one AES-GCM decrypt per endpoint), and encrypted with the keyring's cache warm (what a
running dispatcher pays). Prints the median claim time and the difference per endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_deliveries, webhook_endpoints
from paywire.events.log import NewEvent, append
from paywire.schemas import WebhookEndpointCreate
from paywire.secrets_at_rest import Keyring, generate_key
from paywire.webhooks import delivery, endpoints

KEY = generate_key()


async def setup(db: Database, n: int, *, plain: bool) -> None:
    await migrate.upgrade(db)
    async with db.transaction() as tx:
        for _ in range(n):
            params = WebhookEndpointCreate(url="http://127.0.0.1:9/hook", enabled_events=["*"])
            created = await endpoints.create(tx, params, livemode=False, now=time.time())
            if plain:  # what the previous release stored
                await tx.conn.execute(
                    webhook_endpoints.update()
                    .where(webhook_endpoints.c.id == created["id"])
                    .values(secret=created["secret"])
                )
        customer = {"id": "cus_bench", "object": "customer"}
        await append(tx, [NewEvent("customer.created", customer)], livemode=False, now=time.time())  # N deliveries


async def rounds(db: Database, n: int, count: int, keyring: Keyring | None) -> list[float]:
    times = []
    for _ in range(count):
        async with db.transaction() as tx:
            await tx.conn.execute(
                webhook_deliveries.update().values(lease_until=None, lease_owner=None, next_attempt=0)
            )
        keys = keyring or Keyring.from_text(KEY)  # None: a fresh keyring each round, cold cache
        async with db.transaction() as tx:
            start = time.perf_counter()
            jobs = await delivery.claim(
                tx, owner="b", now=time.time(), lease=60, limit=n, quotas={}, default_quota=1, exclude=(), keyring=keys
            )
            times.append(time.perf_counter() - start)
        assert len(jobs) == n, len(jobs)
    return times


async def main(n: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, plain, warm in (
            ("plain", True, True),
            ("encrypted, cold", False, False),
            ("encrypted, warm", False, True),
        ):
            db = Database(f"sqlite:///{Path(tmp) / (name.replace(', ', '_') + '.db')}", keyring=Keyring.from_text(KEY))
            await setup(db, n, plain=plain)
            times = await rounds(db, n, count, db.keyring if warm else None)
            results[name] = statistics.median(times)
            await db.dispose()
    base = results["plain"]
    for name, t in results.items():
        per_endpoint = (t - base) / n * 1e6
        print(f"{name:16} claim of {n} endpoints: {t * 1e3:7.2f} ms  ({per_endpoint:+6.1f} µs per endpoint vs plain)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.endpoints, args.rounds))

"""How long one test-clock advance takes to run a year of monthly renewals.

    .venv/bin/python bench/clock_advance.py [--runs 5] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Starts a real Paywire server on 127.0.0.1 for each database, subscribes a customer on a test
clock to a monthly price, and times `POST /api/test-clocks/{id}/advance` across 365 days (12
renewals: 48 events, 12 invoices, 12 payment intents). Target: well under a second on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

import asyncpg
import httpx
import uvicorn

from paywire import keys
from paywire.app import PaywireApp

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z
DAY = 86_400


async def one_year(client: httpx.AsyncClient) -> float:
    product = (await client.post("/api/products", json={"name": "Plan"})).json()
    price = (
        await client.post(
            "/api/prices",
            json={
                "product_id": product["id"],
                "unit_amount": "10.00",
                "currency": "usd",
                "recurring": {"interval": "month"},
            },
        )
    ).json()
    clock = (await client.post("/api/test-clocks", json={"frozen_time": T0})).json()
    customer = (await client.post("/api/customers", json={"test_clock_id": clock["id"]})).json()
    sub = await client.post(
        "/api/subscriptions",
        json={
            "customer_id": customer["id"],
            "items": [{"price_id": price["id"]}],
            "default_payment_method": "pm_card_visa",
        },
    )
    sub.raise_for_status()
    started = time.perf_counter()
    advanced = await client.post(f"/api/test-clocks/{clock['id']}/advance", json={"frozen_time": T0 + 365 * DAY})
    elapsed = time.perf_counter() - started
    advanced.raise_for_status()
    renewed = await client.get(
        "/api/events", params={"type": "customer.subscription.renewed", "object_id": sub.json()["id"]}
    )
    assert renewed.json()["count"] == 12, renewed.text
    return elapsed


async def measure(url: str, runs: int) -> list[float]:
    app = PaywireApp(url)
    port = 18_000 + uuid.uuid4().int % 1000
    server = uvicorn.Server(uvicorn.Config(app.api, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    async with app.db.transaction() as tx:
        key = await keys.create_key(tx.conn, livemode=False, now=time.time())
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            return [await one_year(client) for _ in range(runs)]
    finally:
        server.should_exit = True
        await task


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"sqlite": await measure(f"sqlite:///{tmp}/bench.db", args.runs)}
    name = f"paywire_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        results["postgresql"] = await measure(args.postgres.rsplit("/", 1)[0] + "/" + name, args.runs)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    print("one advance over 365 days (12 monthly renewals), seconds")
    for db, times in results.items():
        median, low, high = statistics.median(times), min(times), max(times)
        print(f"  {db:<11} median {median:.3f}  min {low:.3f}  max {high:.3f}  (runs: {len(times)})")


if __name__ == "__main__":
    asyncio.run(main())

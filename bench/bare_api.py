"""The baseline of bench/api_writes.py: a bare FastAPI + SQLAlchemy app doing the same inserts.

    python bench/bare_api.py --database-url URL --port N

`POST /api/customers` inserts the customer row and its `customer.created` event row into
Paywire's own (migrated) tables, in one transaction, with the same connection settings Paywire
uses on SQLite (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, one writer connection). No authentication, no
idempotency, no webhook fan-out: what a hand-written endpoint would do at the least.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import create_async_engine

from paywire.db.engine import async_url
from paywire.db.schema import customers, events
from paywire.ids import new_id


class CustomerIn(BaseModel):
    name: str | None = None
    email: str | None = None


def make_app(url: str) -> FastAPI:
    sqlite = url.startswith("sqlite")
    # SQLite has one writer at a time: one pooled connection queues the writes in the pool instead
    # of in busy_timeout's sleep-and-retry (which gave a p99 near a second with ten connections).
    pool = {"pool_size": 1, "max_overflow": 0} if sqlite else {"pool_size": 10, "max_overflow": 10}
    engine = create_async_engine(async_url(url), **pool)
    if sqlite:

        @sa.event.listens_for(engine.sync_engine, "connect")
        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine.sync_engine, "begin")
        def begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    app = FastAPI()

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/customers")
    async def create_customer(body: CustomerIn) -> dict[str, Any]:
        now = int(time.time())
        row = {
            "id": new_id("cus"),
            "livemode": False,
            "email": body.email,
            "name": body.name,
            "description": None,
            "metadata": {},
            "test_clock_id": None,
            "created": now,
            "updated": now,
        }
        created = {**row, "object": "customer"}
        async with engine.begin() as conn:
            await conn.execute(customers.insert(), row)
            await conn.execute(
                events.insert(),
                {
                    "id": new_id("evt"),
                    "livemode": False,
                    "type": "customer.created",
                    "api_version": "2026-11-26",
                    "object_type": "customer",
                    "object_id": row["id"],
                    "data": {"object": created},
                    "request_id": None,
                    "idempotency_key": None,
                    "metadata": {},
                    "created": now,
                },
            )
        return created

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.database_url), host="127.0.0.1", port=args.port, log_level="warning")

"""`db.dialect.insert_plain` and `update_plain` (rows handed to the driver as tuples) store what
SQLAlchemy's own insert and update store: the same values, the same JSON text (the dispatcher
splices that text into the webhook bodies), and inserted rows in the given order."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.db.dialect import insert_plain, update_plain
from paywire.db.schema import events


def _event(n: int, prefix: str) -> dict[str, Any]:
    return {
        "id": f"evt_{prefix}{n}",
        "livemode": n % 2 == 0,
        "type": "invoice.created",
        "api_version": "2026-11-26",
        "object_type": "invoice",
        "object_id": f"in_{n}",
        "data": {"object": {"id": f"in_{n}", "amount": "4.00", "lines": [{"é": n}]}, "previous_attributes": {}},
        "request_id": None,
        "idempotency_key": f"key {n}" if n % 3 else None,
        "metadata": {},
        "created": 1_798_761_600 + n,
    }


async def test_insert_plain_stores_what_sqlalchemy_stores_in_order(database_url: str) -> None:
    app = PaywireApp(database_url, run_worker=False)
    async with app.running():
        async with app.db.transaction() as tx:
            await tx.conn.execute(events.insert(), [_event(n, "a") for n in range(5)])
            await insert_plain(tx.conn, events, [_event(n, "b") for n in range(5)])
        columns = [c for c in events.c if c.name not in ("seq", "id", "data", "metadata")]
        texts = (sa.cast(events.c.data, sa.Text), sa.cast(events.c.metadata, sa.Text))
        async with app.db.read() as conn:
            rows = (await conn.execute(sa.select(events.c.id, *columns, *texts).order_by(events.c.seq))).all()
    ids = [row[0] for row in rows]
    assert ids == [f"evt_a{n}" for n in range(5)] + [f"evt_b{n}" for n in range(5)]
    assert [tuple(row[1:]) for row in rows[:5]] == [tuple(row[1:]) for row in rows[5:]]


async def test_update_plain_stores_what_sqlalchemy_stores(database_url: str) -> None:
    app = PaywireApp(database_url, run_worker=False)
    async with app.running():
        async with app.db.transaction() as tx:
            await insert_plain(tx.conn, events, [_event(n, p) for p in "ab" for n in range(4)])

            def changes(prefix: str) -> list[dict[str, Any]]:
                return [
                    {"id": f"evt_{prefix}{n}", "data": {"object": {"id": n}, "x": None}, "idempotency_key": None}
                    for n in range(3)
                ]

            by_id = events.update().where(events.c.id == sa.bindparam("b_id"))
            await tx.conn.execute(by_id, [{**row, "b_id": row.pop("id")} for row in changes("a")])
            await update_plain(tx.conn, events, "id", changes("b"))
        columns = [c for c in events.c if c.name not in ("seq", "id", "data")]
        async with app.db.read() as conn:
            query = sa.select(events.c.id, *columns, sa.cast(events.c.data, sa.Text)).order_by(events.c.seq)
            rows = (await conn.execute(query)).all()
    assert [tuple(row[1:]) for row in rows[:4]] == [tuple(row[1:]) for row in rows[4:]]
    assert [row[-1] for row in rows[:4]][:3] == ['{"object":{"id":0},"x":null}', '{"object":{"id":1},"x":null}',
                                                 '{"object":{"id":2},"x":null}']  # fmt: skip

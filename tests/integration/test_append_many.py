"""`events.log.append_many` (a batch of renewals' events, rows built as the driver's tuples, each
object's JSON encoded once) stores what `append` stores for the same events: the same columns,
the same JSON text (the dispatcher splices it into the webhook bodies), the same deliveries,
with `order_key` for an ordered destination only, in the same order."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.db.schema import events, webhook_deliveries
from paywire.destinations import store
from paywire.events.log import Batch, NewEvent, RequestInfo, append, append_many
from paywire.schemas import EventDestinationCreate

NOW = 1_798_761_600.5


def _changes() -> list[list[NewEvent]]:
    """Two state changes; the second's `renewed` and `updated` carry one object (as a renewal's)."""
    invoice = {"id": "in_1", "amount": "4.00", "lines": [{"é": 1, "period": {"start": 1, "end": 2}}], "x": None}
    sub = {"id": "sub_1", "status": "active", "items": [{"id": "si_1", "quantity": 2}], "metadata": {}}
    return [
        [NewEvent("invoice.created", invoice), NewEvent("invoice.paid", {**invoice, "status": "paid"})],
        [
            NewEvent("customer.subscription.renewed", sub),
            NewEvent("customer.subscription.updated", sub, {"status": "past_due", "current_period_end": 3}),
        ],
    ]


async def _stored(app: PaywireApp) -> list[Any]:
    """The events (JSON as stored text) and their deliveries, in `seq` order, without ids."""
    data, metadata = sa.cast(events.c.data, sa.Text), sa.cast(events.c.metadata, sa.Text)
    columns = [c for c in events.c if c.name not in ("seq", "id", "data", "metadata")]
    async with app.db.read() as conn:
        found = (await conn.execute(sa.select(events.c.id, *columns, data, metadata).order_by(events.c.seq))).all()
        number = {row[0]: n for n, row in enumerate(found)}
        d = webhook_deliveries
        query = sa.select(d.c.event_id, d.c.endpoint_id, d.c.livemode, d.c.status, d.c.attempts, d.c.created,
                          d.c.updated, d.c.order_key).order_by(d.c.seq)  # fmt: skip
        deliveries = [(number[row[0]], *row[1:]) for row in (await conn.execute(query)).all()]
    return [[tuple(row[1:]) for row in found], deliveries]


async def test_append_many_stores_what_append_stores(database_url: str) -> None:
    request = RequestInfo("req_1", "key 1")
    stored = []
    for write in ("append", "append_many"):
        app = PaywireApp(database_url, run_worker=False)
        async with app.running():
            async with app.db.transaction() as tx:
                for ordering in ("per_object", "none"):
                    params = EventDestinationCreate(
                        type="webhook", config={"url": "http://127.0.0.1:9/"}, enabled_events=["*"], ordering=ordering
                    )
                    await store.create(tx, params, livemode=False, now=time.time())
            async with app.db.transaction() as tx:
                if write == "append":
                    for change in _changes():
                        await append(tx, change, livemode=False, now=NOW, request=request)
                else:
                    await append_many(tx, [Batch(change, False, NOW, request) for change in _changes()])
            stored.append(await _stored(app))
            async with app.db.transaction() as tx:  # the next round starts from an empty log
                for table in (webhook_deliveries, events):
                    await tx.conn.execute(table.delete())
                await tx.conn.execute(sa.text("DELETE FROM webhook_endpoints"))
    alone, many = stored
    assert many[0] == alone[0]
    assert len(alone[1]) == 8
    # Endpoint ids differ between the rounds: compare what else each delivery holds, and its key.
    assert [row[:1] + row[2:] for row in many[1]] == [row[:1] + row[2:] for row in alone[1]]
    assert sorted(row[-1] or "" for row in many[1]) == ["", "", "", "", "in_1", "in_1", "sub_1", "sub_1"]


def test_the_encoder_made_once_writes_what_the_engines_serializer_writes() -> None:
    from paywire.db.engine import _json_serializer
    from paywire.events.log import _encoder

    value = {"é": [1, 2.5, None, True, "a\u2028b", {"n": -0.0}], "x": "\x00", "big": 10**30}
    assert _encoder(_json_serializer)(value) == _json_serializer(value)
    assert _encoder(_json_serializer) is not _json_serializer

"""The event log: the one `append` every state change calls inside its own transaction.

`append` writes the events, and a pending delivery row for every enabled destination of the same
mode that enabled their type, in the caller's transaction: a rollback leaves neither. It knows
no transport: a destination is an id, the events it takes and its ordering (`events.targets`,
cached per process). A delivery to a `per_object` destination carries the event's object id as
its `order_key`.

Order: readers (the stream, the EventBus) page through events by `seq`. On PostgreSQL a sequence
value is taken at insert, not at commit, so a reader could see seq 11 committed before seq 10 and
skip 10 for good. A transaction-scoped advisory lock, taken before the first insert and held to
commit, makes event-writing transactions commit in `seq` order. SQLite has one writer anyway.
On PostgreSQL the lock, the notify and the read of the destinations' token are one statement
(`_begin_appending`, `dialect.lock_notify_and_read`): one round trip where they were three, of
the seven a `POST /api/customers` made. The token is then read in the snapshot the statement
began with, before any wait for the lock: no order between destination changes (which do not
take the lock) and events was promised either way, and a change committed meanwhile is seen by
the next append.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.clock import iso
from paywire.db import dialect
from paywire.db.dialect import insert_tuples
from paywire.db.engine import Tx
from paywire.db.schema import events, webhook_deliveries
from paywire.db.signal import CHANNEL
from paywire.events import catalogue, targets
from paywire.ids import new_id

API_VERSION = "2026-11-26"


@dataclass(frozen=True)
class NewEvent:
    """What a state change emits: its type and the object as it is after the change."""

    type: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class RequestInfo:
    """The API request that caused the change (`event.request`)."""

    id: str | None = None
    idempotency_key: str | None = None


async def append(
    tx: Tx,
    new_events: Sequence[NewEvent],
    *,
    livemode: bool,
    now: float,
    request: RequestInfo | None = None,
    only_to: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Write `new_events` in order, with their deliveries; returns them as the API shows them.

    `only_to`: deliver to these endpoints alone (enabled ones of this mode), whatever they
    enabled (a test event sent to one endpoint), instead of every endpoint that enabled the type.
    """
    if not new_events:
        return []
    conn = tx.conn
    endpoints = await targets.enabled_at(conn, livemode, await _begin_appending(tx))
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    appended = _rows(new_events, endpoints, livemode, now, request, only_to, event_rows, delivery_rows)
    # One row at a time keeps `seq` in emission order on every backend.
    for row in event_rows:
        await conn.execute(events.insert(), row)
    if delivery_rows:
        await conn.execute(webhook_deliveries.insert(), delivery_rows)
    return appended


@dataclass(frozen=True)
class Batch:
    """One state change's events in `append_many`: what `append` would have been called with."""

    events: Sequence[NewEvent]
    livemode: bool
    now: float
    request: RequestInfo | None = None


async def append_many(tx: Tx, batches: Sequence[Batch]) -> None:
    """`append` for many state changes at once (a batch of renewals): the same rows, the same
    `seq` order — each change's events consecutive, in its order, the changes in the given
    order — the same deliveries and the same notify, in one statement per table.

    The events go in one statement (`db.dialect.insert_tuples`: the driver's executemany on
    SQLite, `unnest … WITH ORDINALITY` on PostgreSQL), whose rows each backend inserts in the
    given order (so `seq` follows it); `tests/integration/test_renewal_batches.py` checks the order.
    The rows are built as the driver's tuples, their JSON as text (`_EventTuples`). Unlike
    `append` it returns nothing: its callers need no rendered events (six dicts a renewal)."""
    if not any(batch.events for batch in batches):
        return
    conn = tx.conn
    token = await _begin_appending(tx)
    modes = {b.livemode for b in batches if b.events}
    endpoints = {mode: await targets.enabled_at(conn, mode, token) for mode in modes}
    keyed = any(endpoints[mode].ordered for mode in modes)  # else every order_key is NULL: left out
    rows = _EventTuples(_encoder(getattr(conn.dialect, "_json_serializer", None) or json.dumps), keyed)
    for batch in batches:
        rows.add(batch.events, endpoints[batch.livemode], batch.livemode, batch.now, batch.request)
    await insert_tuples(conn, events, _EVENT_COLUMNS, rows.events)
    delivery_columns = (*_DELIVERY_COLUMNS, "order_key") if keyed else _DELIVERY_COLUMNS
    await insert_tuples(conn, webhook_deliveries, delivery_columns, rows.deliveries)


_ENCODER_OPTIONS = frozenset(inspect.signature(json.JSONEncoder).parameters)


def _encoder(dumps: Callable[[Any], str]) -> Callable[[Any], str]:
    """`dumps`, as one encoder made once when it is `json.dumps` with encoder options (the
    engine's `partial(json.dumps, separators=…)`): `json.dumps` with options makes a new
    `JSONEncoder` with them for every call, and writes what that encoder's `encode` writes."""
    if not isinstance(dumps, functools.partial) or dumps.func is not json.dumps or dumps.args:
        return dumps
    options: dict[str, Any] = dumps.keywords
    return json.JSONEncoder(**options).encode if set(options) <= _ENCODER_OPTIONS else dumps


# The columns of `_EventTuples`' rows, in their order: those of `_rows`' dicts.
_EVENT_COLUMNS = (
    "id", "livemode", "type", "api_version", "object_type", "object_id", "data",
    "request_id", "idempotency_key", "metadata", "created",
)  # fmt: skip
_DELIVERY_COLUMNS = ("event_id", "endpoint_id", "livemode", "status", "attempts", "next_attempt", "created", "updated")


class _EventTuples:
    """`_rows` for `append_many`: the events' and deliveries' rows as tuples in the order of
    `_EVENT_COLUMNS` and `_DELIVERY_COLUMNS` (+ `order_key` when `keyed`), their JSON already
    text, as the engine's serializer `dumps` writes it (as SQLAlchemy's JSON type would).

    Each object is encoded once, however many events carry it (a renewal's `renewed` and
    `updated` events carry the one rendered subscription), and spliced into its event's `data`
    with the envelope's text; the empty `metadata` and `previous_attributes` are encoded once."""

    def __init__(self, dumps: Callable[[Any], str], keyed: bool) -> None:
        self._dumps = dumps
        self._keyed = keyed
        # The envelope `{"object": …, "previous_attributes": …}` as `dumps` writes it, cut where
        # its two values go: dumps(data) == head + dumps(object) + middle + dumps(previous) + tail.
        self._head, self._middle, self._tail = dumps({"object": 0, "previous_attributes": 0}).split("0")
        self._empty = dumps({})
        self._encoded: dict[int, tuple[dict[str, Any], str]] = {}  # id(object) -> (object, its JSON)
        self.events: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []

    def _object_json(self, obj: dict[str, Any]) -> str:
        # By identity: the same dict object is the same JSON (the object is kept, so its id is not reused).
        known = self._encoded.get(id(obj))
        if known is None:
            known = self._encoded[id(obj)] = (obj, self._dumps(obj))
        return known[1]

    def add(
        self,
        new_events: Sequence[NewEvent],
        endpoints: targets.Targets,
        livemode: bool,
        now: float,
        request: RequestInfo | None,
    ) -> None:
        """One state change's rows, as `_rows` builds them."""
        ordered, keyed = endpoints.ordered, self._keyed
        created = int(now)
        request = request or RequestInfo()
        wall = time.time()  # deliveries run on the wall clock (as in `_rows`)
        for new in new_events:
            kind = catalogue.get(new.type)
            event_id = new_id("evt")
            chosen = endpoints.matching(new.type)
            object_id = str(new.object["id"])
            previous = new.previous_attributes or {}
            data_json = self._head + self._object_json(new.object) + self._middle
            data_json += (self._dumps(previous) if previous else self._empty) + self._tail
            self.events.append(
                (event_id, livemode, new.type, API_VERSION, kind.object_type, object_id, data_json,
                 request.id, request.idempotency_key, self._empty, created)
            )  # fmt: skip
            for endpoint_id in chosen:
                delivery: tuple[Any, ...] = (event_id, endpoint_id, livemode, "pending", 0, wall, created, created)
                if keyed:
                    delivery += (object_id if endpoint_id in ordered else None,)
                self.deliveries.append(delivery)


async def _begin_appending(tx: Tx) -> str | None:
    """Before the transaction's first event take the event-order lock and notify readers;
    returns the destinations' token (`targets.token`), read in the same round trip."""
    if tx.events_appended:
        return await targets.token(tx.conn)
    token: str | None = await dialect.lock_notify_and_read(tx.conn, dialect.Lock.EVENT_ORDER, CHANNEL, targets.TOKEN)
    tx.events_appended = True
    return token


def _rows(
    new_events: Sequence[NewEvent],
    endpoints: targets.Targets,
    livemode: bool,
    now: float,
    request: RequestInfo | None,
    only_to: Sequence[str] | None,
    event_rows: list[dict[str, Any]],
    delivery_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Add the events' rows and their deliveries' rows to the lists; returns them as rendered."""
    ordered = endpoints.ordered
    created = int(now)
    request = request or RequestInfo()
    appended: list[dict[str, Any]] = []
    wall = time.time()
    for new in new_events:
        kind = catalogue.get(new.type)
        event_id = new_id("evt")
        if only_to is not None:
            chosen = [e.id for e in endpoints.all if e.id in only_to]
        else:
            chosen = endpoints.matching(new.type)
        row = {
            "id": event_id,
            "livemode": livemode,
            "type": new.type,
            "api_version": API_VERSION,
            "object_type": kind.object_type,
            "object_id": str(new.object["id"]),
            "data": {"object": new.object, "previous_attributes": new.previous_attributes or {}},
            "request_id": request.id,
            "idempotency_key": request.idempotency_key,
            "metadata": {},
            "created": created,
        }
        event_rows.append(row)
        appended.append(render({**row, "pending_webhooks": len(chosen)}))
        start = len(delivery_rows)
        delivery_rows.extend(
            {
                "event_id": event_id,
                "endpoint_id": endpoint_id,
                "livemode": livemode,
                "status": "pending",
                "attempts": 0,
                # Deliveries run on the wall clock: an event of a test clock frozen in the
                # future (an advanced clock) still goes out now.
                "next_attempt": wall,
                "created": created,
                "updated": created,
            }
            for endpoint_id in chosen
        )
        if ordered:  # the key only for ordered destinations; every row has it (one executemany)
            for delivery in delivery_rows[start:]:
                delivery["order_key"] = row["object_id"] if delivery["endpoint_id"] in ordered else None
    return appended


def _pending_webhooks() -> sa.Label[int]:
    """The event's deliveries still pending, counted when read. Not a stored counter: that cost a
    write to the event's row for every finished delivery (measured: 12 to 17 µs of PostgreSQL
    time per delivery, about a quarter of the database's share of sending one)."""
    d = webhook_deliveries
    pending = sa.select(sa.func.count()).where(d.c.event_id == events.c.id, d.c.status == "pending")
    return pending.scalar_subquery().label("pending_webhooks")


def select_events() -> sa.Select[*tuple[Any, ...]]:
    """SELECT every column of `events`, plus `pending_webhooks`: what `render` needs."""
    return sa.select(events, _pending_webhooks())


def select_events_json() -> sa.Select[*tuple[Any, ...]]:
    """Like `select_events`, but with `data` and `metadata` as their stored JSON text, in
    `data_json` and `metadata_json` (not decoded): what `render_json` needs."""
    return sa.select(
        *(c for c in events.c if c.name not in ("seq", "data", "metadata")),
        sa.cast(events.c.data, sa.Text).label("data_json"),
        sa.cast(events.c.metadata, sa.Text).label("metadata_json"),
        _pending_webhooks(),
    )


def render(row: Any) -> dict[str, Any]:
    """An events row (Row or dict) as the API and webhooks show it."""
    m = row._mapping if isinstance(row, sa.Row) else row
    return {
        "id": m["id"],
        "object": "event",
        "type": m["type"],
        "api_version": m["api_version"],
        "livemode": m["livemode"],
        "created": m["created"],
        "created_at": iso(m["created"]),
        "object_type": m["object_type"],
        "object_id": m["object_id"],
        "data": m["data"],
        "request": {"id": m["request_id"], "idempotency_key": m["idempotency_key"]},
        "pending_webhooks": m["pending_webhooks"],
        "metadata": m["metadata"],
    }


_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _json_text(value: str | None) -> str:
    return "null" if value is None else _compact_json(value)


def render_json(m: Any) -> bytes:
    """`render(m)` as compact JSON bytes, from a row read with `select_events_json`.

    The dispatcher renders every event it claims, so this writes the JSON directly (a third of
    the time of encoding `render`'s dict) and splices in the stored `data` and `metadata` text
    instead of decoding it only to encode it again. A property test checks it equals `render`.
    """
    s = _json_text
    return (
        f'{{"id":{s(m["id"])},"object":"event","type":{s(m["type"])},"api_version":{s(m["api_version"])},'
        f'"livemode":{"true" if m["livemode"] else "false"},"created":{int(m["created"])},'
        f'"created_at":{s(iso(m["created"]))},"object_type":{s(m["object_type"])},"object_id":{s(m["object_id"])},'
        f'"data":{m["data_json"]},"request":{{"id":{s(m["request_id"])},"idempotency_key":{s(m["idempotency_key"])}}},'
        f'"pending_webhooks":{int(m["pending_webhooks"])},"metadata":{m["metadata_json"]}}}'
    ).encode()


def filtered(livemode: bool, *, type: str | None = None, object_id: str | None = None) -> sa.Select[Any]:
    """Events of one mode; `type` may be a prefix ending in `*`."""
    query = select_events().where(events.c.livemode == livemode)
    types = catalogue.types_matching(type or "")
    if types is not None:
        query = query.where(events.c.type.in_(types) if len(types) != 1 else events.c.type == types[0])
    if object_id:
        query = query.where(events.c.object_id == object_id)
    return query


async def get(conn: AsyncConnection, event_id: str, livemode: bool) -> sa.Row[Any] | None:
    return (await conn.execute(select_events().where(events.c.id == event_id, events.c.livemode == livemode))).first()


async def get_by_seq(conn: AsyncConnection, seq: int, livemode: bool | None) -> sa.Row[Any] | None:
    """The event at `seq` (or, if it is of the other mode, the last one of this mode before it)."""
    query = select_events().where(events.c.seq <= seq)
    if livemode is not None:
        query = query.where(events.c.livemode == livemode)
    return (await conn.execute(query.order_by(events.c.seq.desc()).limit(1))).first()


async def seq_of(conn: AsyncConnection, event_id: str, livemode: bool | None) -> int | None:
    query = sa.select(events.c.seq).where(events.c.id == event_id)
    if livemode is not None:
        query = query.where(events.c.livemode == livemode)
    return await conn.scalar(query)


async def last_seq(conn: AsyncConnection) -> int:
    return await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))) or 0


async def read_after(
    conn: AsyncConnection,
    after_seq: int,
    *,
    livemode: bool | None,
    types: Sequence[str] | None = None,
    limit: int = 500,
) -> list[sa.Row[Any]]:
    """Events with seq > `after_seq`, oldest first; `livemode=None` reads both modes."""
    query = select_events().where(events.c.seq > after_seq)
    if livemode is not None:
        query = query.where(events.c.livemode == livemode)
    if types and "*" not in types:
        query = query.where(events.c.type.in_(list(types)))
    return list((await conn.execute(query.order_by(events.c.seq).limit(limit))).all())

"""Helpers every stored object shares: common fields, lookups, updates that emit `.updated`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.errors import NotFound
from paywire.events.log import NewEvent, RequestInfo, append


class Caller(Protocol):
    """Who asks (`billing.runtime.Call` is one): the mode written in, the request the events name."""

    @property
    def livemode(self) -> bool: ...

    @property
    def request(self) -> RequestInfo | None: ...


def common_fields(m: Any, object_name: str) -> dict[str, Any]:
    """`id`, `object`, `livemode`, `metadata`, `created`, `created_at` of a row mapping."""
    return {
        "id": m["id"],
        "object": object_name,
        "livemode": m["livemode"],
        "metadata": m["metadata"] or {},
        "created": m["created"],
        "created_at": iso(m["created"]),
    }


async def fetch(
    conn: AsyncConnection, table: sa.Table, object_id: str, livemode: bool, *, lock: bool = False
) -> sa.RowMapping:
    """The row of `object_id` in this mode, or a 404 naming it (the other mode's rows are invisible)."""
    query = sa.select(table).where(table.c.id == object_id, table.c.livemode == livemode)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        noun = table.name.rstrip("s").replace("_", " ")
        raise NotFound(f"no such {noun}: {object_id!r}", param="id")
    return row


def merge_metadata(old: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's rule: given keys are set, a key set to "" is removed, others are kept."""
    if update is None:
        return old
    merged = {**old, **update}
    return {k: v for k, v in merged.items() if v != ""}


def changes(row: sa.RowMapping, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of `values` that differs from `row`."""
    return {k: v for k, v in values.items() if row[k] != v}


def previous(rendered_before: dict[str, Any], rendered_after: dict[str, Any]) -> dict[str, Any]:
    """`previous_attributes`: the API fields whose value changed, as they were before."""
    return {
        k: v for k, v in rendered_before.items() if rendered_after.get(k) != v and k not in ("updated", "updated_at")
    }


async def create_object(
    tx: Tx,
    call: Caller,
    table: sa.Table,
    row: dict[str, Any],
    *,
    render: Callable[[Any], dict[str, Any]],
    event_type: str,
    now: float,
) -> dict[str, Any]:
    """Insert `row` and emit `event_type` with the object as the API shows it."""
    await tx.conn.execute(table.insert(), row)
    created = render(row)
    await append(tx, [NewEvent(event_type, created)], livemode=call.livemode, now=now, request=call.request)
    return created


async def update_object(
    tx: Tx,
    call: Caller,
    table: sa.Table,
    object_id: str,
    values: dict[str, Any],
    *,
    render: Callable[[Any], dict[str, Any]],
    event_type: str,
    now: float,
) -> dict[str, Any]:
    """Apply `values` (metadata merged); if anything changed, emit `event_type` with `previous_attributes`."""
    row = await fetch(tx.conn, table, object_id, call.livemode, lock=True)
    if "metadata" in values:
        values = {**values, "metadata": merge_metadata(row["metadata"], values["metadata"])}
    changed = changes(row, values)
    if not changed:
        return render(row)
    await tx.conn.execute(table.update().where(table.c.seq == row["seq"]).values(**changed, updated=int(now)))
    before, after = render(row), render({**row, **changed})
    event = NewEvent(event_type, after, previous(before, after))
    await append(tx, [event], livemode=call.livemode, now=now, request=call.request)
    return after

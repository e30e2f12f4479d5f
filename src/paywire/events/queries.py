"""What the dashboard reads of the event log: pages of the events list (filters, keyset on
`seq`), one event's deliveries with their attempts, the endpoints an event would go to, the
events of some objects (timelines), and the EventBus consumers with how far behind they are."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.schema import event_consumers, events, webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.events import log as event_log
from paywire.events.local import consumer_scope
from paywire.pagination import Cursor, KeysetPage


def _listed_columns() -> sa.Select[Any]:
    """What a row of the list shows, and no more: `data` and `metadata` (the bulk of a row, JSON
    to decode) are left to the event's own page."""
    c = event_log.select_events().selected_columns  # the event log's own `pending_webhooks`
    return sa.select(c.seq, c.id, c.type, c.object_id, c.created, c.pending_webhooks)


@functools.lru_cache(maxsize=64)
def _page_statement(types: int, object_id: bool, since: bool, until: bool, cursor: str, n: int) -> sa.Select[Any]:
    """The page query for one shape of filters (`types` of them, bound as `type_0`…; the other
    values bound by name), built once: building the 13-type union of `customer.*` anew cost
    6 ms of Python per request, about what the rest of the page costs."""
    seq = events.c.seq
    ascending = cursor == "after"

    def part(i: int | None) -> sa.Select[Any]:
        q = sa.select(seq).where(events.c.livemode == sa.bindparam("livemode"))
        if i is not None:
            q = q.where(events.c.type == sa.bindparam(f"type_{i}"))
        if object_id:
            q = q.where(events.c.object_id == sa.bindparam("object_id"))
        if since:
            q = q.where(events.c.created >= sa.bindparam("since"))
        if until:
            q = q.where(events.c.created < sa.bindparam("until"))
        if cursor == "after":
            q = q.where(seq > sa.bindparam("cursor"))
        elif cursor == "before":
            q = q.where(seq < sa.bindparam("cursor"))
        return q.order_by(seq.asc() if ascending else seq.desc()).limit(n + 1)

    if types <= 1:
        seqs = part(0 if types else None).subquery()
    else:
        merged = sa.union_all(*(sa.select(part(i).subquery().c.seq) for i in range(types))).subquery()
        order = merged.c.seq.asc() if ascending else merged.c.seq.desc()
        seqs = sa.select(merged.c.seq).order_by(order).limit(n + 1).subquery()
    return _listed_columns().join_from(seqs, events, seq == seqs.c.seq).order_by(seq.desc())


async def page_of_events(
    conn: AsyncConnection,
    livemode: bool,
    *,
    types: list[str] | None,
    object_id: str | None,
    since: int | None,
    until: int | None,
    cursor: Cursor,
) -> KeysetPage:
    """One page of events, newest first, by keyset on `seq` (see `catalogue.types_matching`), in one query:
    the page's seqs (an index range per type, merged) joined back to their rows."""
    n = cursor.size
    ascending = cursor.after is not None
    if types is not None and not types:
        return KeysetPage([], None, None)
    direction = "after" if cursor.after is not None else "before" if cursor.before is not None else ""
    values: dict[str, Any] = {"livemode": livemode, "object_id": object_id, "since": since, "until": until}
    values["cursor"] = cursor.after if cursor.after is not None else cursor.before
    values.update({f"type_{i}": t for i, t in enumerate(types or ())})
    query = _page_statement(len(types or ()), bool(object_id), since is not None, until is not None, direction, n)
    rows = list((await conn.execute(query, values)).all())
    more = len(rows) > n
    if more:  # the one row past the page: the oldest when going back, the newest when going forward
        rows = rows[1:] if ascending else rows[:n]
    if ascending:
        return KeysetPage(rows, rows[-1].seq if rows else None, rows[0].seq if rows and more else None)
    return KeysetPage(
        rows, rows[-1].seq if rows and more else None, rows[0].seq if rows and cursor.before is not None else None
    )


async def event_deliveries(conn: AsyncConnection, event_id: str, livemode: bool) -> list[dict[str, Any]]:
    """Every delivery of the event, per endpoint, each with its attempts (oldest first)."""
    d, a, e = webhook_deliveries, webhook_attempts, webhook_endpoints
    rows = (
        await conn.execute(
            sa.select(d, e.c.url, e.c.status.label("endpoint_status"))
            .outerjoin(e, e.c.id == d.c.endpoint_id)
            .where(d.c.event_id == event_id, d.c.livemode == livemode)
            .order_by(d.c.seq)
        )
    ).mappings()
    deliveries = [{**row, "attempt_list": []} for row in rows]
    by_seq = {row["seq"]: row for row in deliveries}
    # By `event_id` alone, sorted here: with `livemode = ?` and `ORDER BY seq` in the query,
    # SQLite may walk `webhook_attempts(livemode, seq)`, every attempt of the mode, to skip a sort
    # of three rows. The mode is checked on each row instead (the event's own mode is its attempts').
    attempts = (await conn.execute(sa.select(a).where(a.c.event_id == event_id))).mappings().all()
    for attempt in sorted(attempts, key=lambda row: row["seq"]):
        delivery = by_seq.get(attempt["delivery_seq"])
        if delivery is not None and attempt["livemode"] == livemode:
            delivery["attempt_list"].append(attempt)
    return deliveries


async def enabled_endpoint_filters(conn: AsyncConnection, livemode: bool) -> list[Any]:
    """`(id, enabled_events)` of this mode's enabled endpoints: which of them an event matches."""
    return list(
        (
            await conn.execute(
                sa.select(webhook_endpoints.c.id, webhook_endpoints.c.enabled_events).where(
                    webhook_endpoints.c.livemode == livemode, webhook_endpoints.c.status == "enabled"
                )
            )
        ).all()
    )


async def events_of_objects(
    conn: AsyncConnection, object_ids: list[str], livemode: bool, *, after_seq: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The events of these objects (after `after_seq`, if given), newest first, rendered."""
    if not object_ids:
        return []
    query = event_log.select_events().where(events.c.livemode == livemode, events.c.object_id.in_(object_ids))
    if after_seq is not None:
        query = query.where(events.c.seq > after_seq)
    query = query.order_by(events.c.seq.desc()).limit(limit)
    return [event_log.render(row) for row in (await conn.execute(query)).all()]


async def consumers_with_lag(conn: AsyncConnection, livemode: bool, cap: int) -> list[dict[str, Any]]:
    """The EventBus consumers this mode's dashboard shows, each with `behind`: how many events
    past its `last_seq` it has still to read, counted up to `cap + 1` (further costs a scan)."""
    consumers = []
    for row in (
        await conn.execute(
            sa.select(event_consumers)
            .where(event_consumers.c.scope.in_([consumer_scope(livemode), "all"]))
            .order_by(event_consumers.c.name)
        )
    ).mappings():
        behind_query = sa.select(sa.literal(1)).where(events.c.seq > row["last_seq"])
        if row["scope"] != "all":
            behind_query = behind_query.where(events.c.livemode == livemode)
        behind = await conn.scalar(sa.select(sa.func.count()).select_from(behind_query.limit(cap + 1).subquery()))
        consumers.append({**row, "behind": int(behind or 0)})
    return consumers

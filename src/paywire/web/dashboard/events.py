"""Events: the list (filters, keyset pages), one event with its deliveries and attempts, resend,
the live tail (Server-Sent Events on the session cookie) and the event type catalogue."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from paywire.db.schema import events, webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.errors import NotFound
from paywire.events import catalogue
from paywire.events import log as event_log
from paywire.web.dashboard import auth
from paywire.web.dashboard.common import (
    Cursor,
    KeysetPage,
    Reading,
    admin_form,
    audit_action,
    current,
    cursor_params,
    field,
    page,
    parse_utc,
    reading,
    redirect,
    services_of,
)

router = APIRouter()

HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 1.0


@functools.cache
def type_choices() -> tuple[str, ...]:
    """Prefixes (`customer.*`, `customer.subscription.*`…) then every type, for the filter's list
    (the catalogue is fixed at import: computed once)."""
    prefixes: set[str] = set()
    for name in catalogue.EVENT_TYPES:
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefixes.add(".".join(parts[:i]) + ".*")
    return (*sorted(prefixes), *catalogue.EVENT_TYPES)


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
    conn: Any,
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


@router.get("/events")
async def list_events(
    request: Request,
    type: Annotated[str, Query(max_length=80)] = "",
    object_id: Annotated[str, Query(max_length=40)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    cursor: Cursor = Depends(cursor_params),
    signed: Reading = Depends(reading),
) -> Response:
    since_ts = parse_utc(since, "since") if since else None
    until_ts = parse_utc(until, "until") if until else None
    result = await page_of_events(
        signed.conn,
        signed.session.livemode,
        types=catalogue.types_matching(type),
        object_id=object_id.strip() or None,
        since=since_ts,
        until=until_ts,
        cursor=cursor,
    )
    filters = {"type": type, "object_id": object_id, "since": since, "until": until}
    context = {
        "events": result.rows,
        "page": result.links(request),
        "filters": filters,
        "filtered": any(filters.values()),
        "type_choices": type_choices(),
    }
    return page(request, signed.session, "events.html", context, nav="events")


async def event_deliveries(conn: Any, event_id: str, livemode: bool) -> list[dict[str, Any]]:
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


@router.get("/events/{event_id}")
async def show_event(event_id: str, request: Request, signed: Reading = Depends(reading)) -> Response:
    session, conn = signed.session, signed.conn
    row = await event_log.get(conn, event_id, session.livemode)
    if row is None:
        raise NotFound(f"no such event: {event_id!r}")
    deliveries = await event_deliveries(conn, event_id, session.livemode)
    matching = (
        await conn.execute(
            sa.select(webhook_endpoints.c.id, webhook_endpoints.c.enabled_events).where(
                webhook_endpoints.c.livemode == session.livemode, webhook_endpoints.c.status == "enabled"
            )
        )
    ).all()
    event = event_log.render(row)
    context = {
        "event": event,
        "event_json": json.dumps(event, indent=2, ensure_ascii=False),
        "deliveries": deliveries,
        "matching_count": sum(1 for m in matching if catalogue.matches(m.enabled_events, event["type"])),
        "description": catalogue.EVENT_TYPES[event["type"]].description
        if event["type"] in catalogue.EVENT_TYPES
        else "",
    }
    return page(request, session, "event.html", context, nav="events")


@router.post("/events/{event_id}/resend")
async def resend_event(event_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
    """Queue the event again: to one endpoint (`endpoint_id`) or to every matching endpoint."""
    from paywire.webhooks import delivery

    form = await admin_form(request, session)
    endpoint_id = field(form, "endpoint_id") or None
    services = services_of(request)
    async with services.db.transaction() as tx:
        targets = await delivery.resend(tx, event_id, endpoint_id, livemode=session.livemode, now=services.now())
        await audit_action(tx.conn, request, session, "event_resent", event_id, {"endpoints": targets})
        tx.after_commit.append(services.db.signal.notify)
    return redirect(f"/events/{event_id}", "resent")


@router.get("/live")
async def live(request: Request, session: auth.Session = Depends(current)) -> Response:
    return page(request, session, "live.html", {"type_choices": type_choices()}, nav="live")


def _sse(row: Any) -> bytes:
    data = {
        "id": row.id,
        "type": row.type,
        "object_id": row.object_id,
        "created": row.created,
        "pending_webhooks": row.pending_webhooks,
    }
    return f"id: {row.seq}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/live/stream")
async def live_stream(request: Request, session: auth.Session = Depends(current)) -> StreamingResponse:
    """This mode's events from now on (or after `Last-Event-ID`, a seq, on reconnect)."""
    services = services_of(request)
    db = services.db
    resume = request.headers.get("last-event-id", "")
    async with db.read() as conn:
        after = int(resume) if resume.isdigit() else await event_log.last_seq(conn)
    token = request.cookies.get(auth.SESSION_COOKIE)

    async def messages() -> AsyncIterator[bytes]:
        seq = after
        yield b"retry: 2000\n\n"
        last_sent = time.monotonic()
        while not services.lifecycle.draining and not await request.is_disconnected():
            snapshot = db.signal.snapshot()
            try:
                async with db.read() as conn:
                    rows = await event_log.read_after(conn, seq, livemode=session.livemode, limit=200)
            except Exception:  # the database is restarting: keep our place and retry
                await asyncio.sleep(POLL_SECONDS)
                continue
            for row in rows:
                seq = row.seq
                yield _sse(row)
                last_sent = time.monotonic()
            if rows:
                continue
            if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                if await auth.session_of(db, token, now=time.time()) is None:
                    return  # signed out or expired: the stream ends with the session
                yield b": keep-alive\n\n"
                last_sent = time.monotonic()
            await db.signal.wait(snapshot, POLL_SECONDS)

    return StreamingResponse(
        messages(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@router.get("/event-types")
async def event_types(request: Request, session: auth.Session = Depends(current)) -> Response:
    return page(
        request, session, "event_types.html", {"types": list(catalogue.EVENT_TYPES.values())}, nav="event_types"
    )

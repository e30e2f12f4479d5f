"""Events: the list (filters, keyset pages), one event with its deliveries and attempts, resend,
the live tail (Server-Sent Events on the session cookie) and the event type catalogue."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from paywire.errors import NotFound
from paywire.events import catalogue, queries
from paywire.events import log as event_log
from paywire.ops import operators
from paywire.pagination import Cursor
from paywire.web.dashboard import auth
from paywire.web.dashboard.common import (
    Reading,
    admin_form,
    audit_action,
    current,
    cursor_params,
    field,
    page,
    page_links,
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
    result = await queries.page_of_events(
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
        "page": page_links(request, result),
        "filters": filters,
        "filtered": any(filters.values()),
        "type_choices": type_choices(),
    }
    return page(request, signed.session, "events.html", context, nav="events")


@router.get("/events/{event_id}")
async def show_event(event_id: str, request: Request, signed: Reading = Depends(reading)) -> Response:
    session, conn = signed.session, signed.conn
    row = await event_log.get(conn, event_id, session.livemode)
    if row is None:
        raise NotFound(f"no such event: {event_id!r}")
    deliveries = await queries.event_deliveries(conn, event_id, session.livemode)
    matching = await queries.enabled_endpoint_filters(conn, session.livemode)
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
async def resend_event(event_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
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
async def live(request: Request, session: operators.Session = Depends(current)) -> Response:
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
async def live_stream(request: Request, session: operators.Session = Depends(current)) -> StreamingResponse:
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
                if await operators.session_of(db, token, now=time.time()) is None:
                    return  # signed out or expired: the stream ends with the session
                yield b": keep-alive\n\n"
                last_sent = time.monotonic()
            await db.signal.wait(snapshot, POLL_SECONDS)

    return StreamingResponse(
        messages(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@router.get("/event-types")
async def event_types(request: Request, session: operators.Session = Depends(current)) -> Response:
    return page(
        request, session, "event_types.html", {"types": list(catalogue.EVENT_TYPES.values())}, nav="event_types"
    )

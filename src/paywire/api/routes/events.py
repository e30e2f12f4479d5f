from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import StreamingResponse

from paywire.api.context import Ctx, context
from paywire.api.event_stream import EventStreamResponse
from paywire.api.paging import page_params
from paywire.db.schema import events as table
from paywire.errors import InvalidRequest, NotFound
from paywire.events import catalogue
from paywire.events import log as event_log
from paywire.events.local import store_position, stored_position
from paywire.pagination import Page, paginate
from paywire.schemas import (
    ConsumerPosition,
    ConsumerPositionOut,
    EventObject,
    EventResend,
    EventResendResult,
    EventTypeOut,
    ListResponse,
)
from paywire.webhooks import delivery

router = APIRouter(tags=["events"])

FROM_START = "start"


@router.get("/api/event-types", response_model=list[EventTypeOut])
async def list_event_types() -> list[dict[str, str]]:
    """The catalogue: every event type Paywire emits."""
    return [
        {"type": t.name, "object_type": t.object_type, "description": t.description}
        for t in catalogue.EVENT_TYPES.values()
    ]


@router.get("/api/events", response_model=ListResponse[EventObject])
async def list_events(
    type: Annotated[str | None, Query(max_length=80, description="A type, or a prefix ending in *")] = None,
    object_id: Annotated[str | None, Query(max_length=40)] = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = event_log.filtered(ctx.livemode, type=type, object_id=object_id)
        return await paginate(conn, query, table.c.seq, page, event_log.render)


@router.get(
    "/api/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream_events(
    after: Annotated[
        str | None, Query(max_length=40, description="Resume after this event id; `start` for the beginning.")
    ] = None,
    types: Annotated[str | None, Query(max_length=4000, description="Comma-separated event types.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
    ctx: Ctx = Depends(context),
) -> EventStreamResponse:
    """Events oldest first from `Last-Event-ID` (or `?after=`), then live. Without either: from now.

    The stream opens with an `event: ready` message whose data names the last event before it
    (`{"last_event_id": …}`), so a client starting "from now" knows where it started.
    """
    wanted = _parse_types(types)
    start = last_event_id or after
    async with ctx.db.read() as conn:
        if start == FROM_START:
            after_seq = 0
        elif start:
            found = await event_log.seq_of(conn, start, ctx.livemode)
            if found is None:
                raise NotFound(f"no such event: {start!r}", param="after")
            after_seq = found
        else:
            after_seq = await event_log.last_seq(conn)
        head = await event_log.get_by_seq(conn, after_seq, ctx.livemode) if after_seq else None

    ready = {"last_event_id": head.id if head else (start if start and start != FROM_START else None)}
    return EventStreamResponse(
        ctx.db, ctx.services.lifecycle, after_seq=after_seq, livemode=ctx.livemode, wanted=wanted, ready=ready
    )


def _parse_types(types: str | None) -> frozenset[str] | None:
    if not types:
        return None
    names = [t.strip() for t in types.split(",") if t.strip()]
    unknown = catalogue.unknown_types(names)
    if unknown:
        raise InvalidRequest(f"unknown event type {unknown[0]!r} in types", param="types")
    return None if "*" in names else frozenset(names)


@router.get("/api/events/{event_id}", response_model=EventObject)
async def retrieve_event(event_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        row = await event_log.get(conn, event_id, ctx.livemode)
    if row is None:
        raise NotFound(f"no such event: {event_id!r}", param="id")
    return event_log.render(row)


@router.post("/api/events/{event_id}/resend", response_model=EventResendResult)
async def resend_event(
    event_id: str, body: EventResend | None = Body(None), ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    """Queue a new delivery now: to one endpoint, or to every enabled endpoint that matches."""
    endpoint_id = (body or EventResend()).webhook_endpoint_id
    async with ctx.db.transaction() as tx:
        targets = await delivery.resend(tx, event_id, endpoint_id, livemode=ctx.livemode, now=ctx.now())
        tx.after_commit.append(ctx.db.signal.notify)
    return {"object": "event_resend", "event_id": event_id, "webhook_endpoint_ids": targets}


consumers = APIRouter(prefix="/api/event-consumers", tags=["events"])


@consumers.get("/{name}", response_model=ConsumerPositionOut)
async def get_consumer(name: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Where a durable EventBus consumer (`EventBus.connect(..., name=…)`) is."""
    row = await stored_position(ctx.db, name, ctx.livemode)
    if row is None:
        raise NotFound(f"no such consumer: {name!r}", param="name")
    return {"name": name, "last_event_id": row.last_event_id, "updated": row.updated}


@consumers.put("/{name}", response_model=ConsumerPositionOut)
async def set_consumer(name: str, body: ConsumerPosition, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Record that the consumer has handled everything up to `last_event_id` (never moves back)."""
    if len(name) > 200:
        raise InvalidRequest("consumer name is longer than 200 characters", param="name")
    seq: int | None = 0
    if body.last_event_id is not None:
        async with ctx.db.read() as conn:
            seq = await event_log.seq_of(conn, body.last_event_id, ctx.livemode)
    if seq is None:
        raise NotFound(f"no such event: {body.last_event_id!r}", param="last_event_id")
    await store_position(ctx.db, name, ctx.livemode, seq, body.last_event_id, ctx.now())
    row = await stored_position(ctx.db, name, ctx.livemode)
    assert row is not None
    return {"name": name, "last_event_id": row.last_event_id, "updated": row.updated}

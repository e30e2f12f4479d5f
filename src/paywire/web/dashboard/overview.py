"""The overview (deliveries in the last 24 hours, endpoints needing attention, the queue, the
EventBus consumers) and the audit log page."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.schema import (
    audit_log,
    event_consumers,
    events,
    webhook_deliveries,
    webhook_endpoints,
)
from paywire.events.local import consumer_scope
from paywire.web.dashboard import audit, auth
from paywire.web.dashboard.common import Cursor, Reading, current, cursor_params, keyset, page, reading, services_of
from paywire.webhooks import rollups

router = APIRouter()
d, e = webhook_deliveries, webhook_endpoints
BEHIND_CAP = 10_000  # consumers further behind show "10,000+" (counting further costs a scan)


def duration(seconds: int) -> str:
    """`42 s`, `5 min`, `3 h 20 min`, `2 d 4 h`."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86_400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86_400} d {seconds % 86_400 // 3600} h"


class Bar(NamedTuple):
    """One hour of the chart. Attributes, not dict keys: the template reads 14 per bar, and
    Jinja tries `getattr` first (a dict's miss raises, then it looks the key up)."""

    x: float
    w: float
    start: int
    ok_y: float
    ok_h: float
    bad_y: float
    bad_h: float
    succeeded: int
    failed: int
    title: str  # "2026-12-01 10:00:00 UTC: 12 succeeded, 3 failed"
    label: str  # "10:00" under every sixth bar, else ""


class Chart(NamedTuple):
    width: int
    height: int
    bars: tuple[Bar, ...]
    max: int


def chart(buckets: list[dict[str, Any]]) -> Chart:
    """Geometry of the server-rendered SVG bar chart (no script, no inline style)."""
    width, height, gap = 720, 160, 4
    bar = (width - gap * (len(buckets) - 1)) / len(buckets)
    top = max((b["succeeded"] + b["failed"] for b in buckets), default=0) or 1
    bars = []
    for i, b in enumerate(buckets):
        ok_h = height * b["succeeded"] / top
        bad_h = height * b["failed"] / top
        x = i * (bar + gap)
        hour = datetime.fromtimestamp(b["start"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")  # as `| utc` shows it
        bars.append(
            Bar(
                x=round(x, 1), w=round(bar, 1), start=b["start"],
                ok_y=round(height - ok_h, 1), ok_h=round(ok_h, 1),
                bad_y=round(height - ok_h - bad_h, 1), bad_h=round(bad_h, 1),
                succeeded=b["succeeded"], failed=b["failed"],
                title=f"{hour}: {b['succeeded']} succeeded, {b['failed']} failed",
                label=hour[11:16] if i % 6 == 0 else "",
            )
        )  # fmt: skip
    return Chart(width, height, tuple(bars), top)


PENDING_BRANCHES = 100  # endpoints per statement (SQLite allows at most 500 SELECTs in a UNION)


@functools.cache
def _pending_statement(branches: int) -> sa.Select[Any]:
    """The pending count over `branches` endpoints (bound as `endpoint_0`…), built once per
    size: a fresh union of 10 selects per page was ~400 objects of cyclic garbage each time."""
    each = sa.union_all(
        *(
            sa.select(sa.func.count().label("n"), sa.func.min(d.c.created).label("first")).where(
                d.c.endpoint_id == sa.bindparam(f"endpoint_{i}"), d.c.status == "pending"
            )
            for i in range(branches)
        )
    ).subquery()
    return sa.select(sa.func.sum(each.c.n), sa.func.min(each.c.first))


async def pending_deliveries(conn: AsyncConnection, endpoint_ids: list[str]) -> tuple[int, float | None]:
    """How many deliveries of these endpoints are pending, and the oldest one's `created`.

    One statement per 100 endpoints, a branch per endpoint (`endpoint_id = ? AND status =
    'pending'`, a range of `webhook_deliveries(endpoint_id, status, next_attempt)` each), summed:
    `endpoint_id IN (…)` made SQLite (with ANALYZE statistics) scan every delivery (measured:
    490 ms p50 at 1,000,000 deliveries), and a query per endpoint cost a round trip each."""
    pending, oldest = 0, None
    for start in range(0, len(endpoint_ids), PENDING_BRANCHES):
        chunk = endpoint_ids[start : start + PENDING_BRANCHES]
        values = {f"endpoint_{i}": endpoint_id for i, endpoint_id in enumerate(chunk)}
        count, first = (await conn.execute(_pending_statement(len(chunk)), values)).one()
        pending += int(count or 0)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return pending, oldest


@router.get("/")
async def overview(request: Request, signed: Reading = Depends(reading)) -> Response:
    services = services_of(request)
    now = services.now()
    session, conn = signed.session, signed.conn
    livemode = session.livemode
    endpoint_rows = (
        (await conn.execute(sa.select(e).where(e.c.livemode == livemode).order_by(e.c.seq))).mappings().all()
    )
    ids = [row["id"] for row in endpoint_rows]
    buckets = await rollups.hourly(conn, livemode, now)
    pending, oldest = await pending_deliveries(conn, ids)
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
        behind = await conn.scalar(
            sa.select(sa.func.count()).select_from(behind_query.limit(BEHIND_CAP + 1).subquery())
        )
        consumers.append({**row, "behind": int(behind or 0)})
    attention = [r for r in endpoint_rows if r["status"] == "disabled" or r["failing_since"] is not None]
    context = {
        "succeeded": sum(b["succeeded"] for b in buckets),
        "failed": sum(b["failed"] for b in buckets),
        "pending": pending,
        "oldest_age": None if oldest is None else duration(max(0, int(now - oldest))),
        "chart": chart(buckets),
        "attention": attention,
        "endpoint_count": len(endpoint_rows),
        "consumers": consumers,
        "behind_cap": BEHIND_CAP,
    }
    return page(request, session, "overview.html", context, nav="overview")


@router.get("/audit")
async def audit_page(
    request: Request,
    action: Annotated[str, Query(max_length=40)] = "",
    operator: Annotated[str, Query(max_length=320)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: auth.Session = Depends(current),
) -> Response:
    services = services_of(request)
    async with services.db.read() as conn:
        query = audit.listing(action=action or None, operator=operator.strip().lower() or None)
        result = await keyset(conn, query, audit_log.c.seq, cursor)
    context = {
        "entries": [row._mapping for row in result.rows],
        "page": result.links(request),
        "actions": audit.ACTIONS,
        "action": action,
        "operator": operator,
    }
    return page(request, session, "audit.html", context, nav="audit")

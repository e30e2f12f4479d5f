"""The overview (deliveries in the last 24 hours, endpoints needing attention, the queue, the
EventBus consumers) and the audit log page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from paywire.events import queries as event_queries
from paywire.ops import audit_log, operators
from paywire.pagination import Cursor
from paywire.web.dashboard.common import Reading, current, cursor_params, page, page_links, reading, services_of
from paywire.webhooks import queries as webhook_queries
from paywire.webhooks import rollups

router = APIRouter()
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


@router.get("/")
async def overview(request: Request, signed: Reading = Depends(reading)) -> Response:
    services = services_of(request)
    now = services.now()
    session, conn = signed.session, signed.conn
    livemode = session.livemode
    endpoint_rows = await webhook_queries.all_endpoints(conn, livemode)
    ids = [row["id"] for row in endpoint_rows]
    buckets = await rollups.hourly(conn, livemode, now)
    pending, oldest = await webhook_queries.pending_deliveries(conn, ids)
    consumers = await event_queries.consumers_with_lag(conn, livemode, BEHIND_CAP)
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
    session: operators.Session = Depends(current),
) -> Response:
    services = services_of(request)
    async with services.db.read() as conn:
        result = await audit_log.page(conn, cursor, action=action or None, operator=operator.strip().lower() or None)
    context = {
        "entries": [row._mapping for row in result.rows],
        "page": page_links(request, result),
        "actions": audit_log.ACTIONS,
        "action": action,
        "operator": operator,
    }
    return page(request, session, "audit.html", context, nav="audit")

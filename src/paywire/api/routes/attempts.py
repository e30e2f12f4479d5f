"""`GET /api/webhook-attempts`: every delivery attempt, newest first."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.db.schema import webhook_attempts as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse, WebhookAttempt
from paywire.webhooks import attempts, rollups

router = APIRouter(prefix="/api/webhook-attempts", tags=["webhook attempts"])


@router.get("", response_model=ListResponse[WebhookAttempt])
async def list_attempts(
    event_id: Annotated[str | None, Query(max_length=40)] = None,
    webhook_endpoint_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Literal["succeeded", "failed"] | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    query = attempts.listing(ctx.livemode, event_id=event_id, endpoint_id=webhook_endpoint_id, status=status)
    async with ctx.db.read() as conn:
        # The total from the rollups (exact: kept in the transactions that add and remove
        # attempts), not a count of millions of rows; one event's attempts are counted directly.
        total = None
        if not event_id:
            total = await rollups.count(conn, ctx.livemode, endpoint_id=webhook_endpoint_id, status=status)
        return await paginate(conn, query, table.c.seq, page, attempts.render, count=total)

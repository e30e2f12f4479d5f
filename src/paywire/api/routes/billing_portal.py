"""`/api/billing-portal/sessions`: a one-time link to the customer portal."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from paywire.api.context import Ctx, context
from paywire.billing import portal_sessions
from paywire.billing.schemas import PortalSession, PortalSessionCreate

router = APIRouter(prefix="/api/billing-portal", tags=["billing portal"])


@router.post("/sessions", response_model=PortalSession)
async def create_portal_session(
    body: PortalSessionCreate, request: Request, ctx: Ctx = Depends(context)
) -> dict[str, Any]:
    """A portal `url` for one customer: open it within 5 minutes; it works once, then the
    browser holds a one-hour portal session."""
    pages_url = ctx.services.public_url(str(request.base_url))
    async with ctx.db.transaction() as tx:
        return await portal_sessions.create(tx, ctx.call(), body, pages_url=pages_url)

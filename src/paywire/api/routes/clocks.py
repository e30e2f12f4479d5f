from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from paywire import objects
from paywire.api.context import Ctx, context
from paywire.api.paging import page_params
from paywire.billing import clock_advance
from paywire.billing.schemas import TestClock, TestClockAdvance, TestClockCreate
from paywire.db.schema import test_clocks as table
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(prefix="/api/test-clocks", tags=["test clocks"])


@router.post("", response_model=TestClock)
async def create_test_clock(body: TestClockCreate, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await clock_advance.create(tx, ctx.call(), body)


@router.get("", response_model=ListResponse[TestClock])
async def list_test_clocks(page: Page = Depends(page_params), ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await paginate(conn, clock_advance.listing(ctx.livemode), table.c.seq, page, clock_advance.render)


@router.get("/{clock_id}", response_model=TestClock)
async def retrieve_test_clock(clock_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return clock_advance.render(await objects.fetch(conn, table, clock_id, ctx.livemode))


@router.post("/{clock_id}/advance", response_model=TestClock)
async def advance_test_clock(clock_id: str, body: TestClockAdvance, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Move the clock to `frozen_time`, running everything due on it in time order. Answers when
    done (status `ready`), or after 20 s with status `advancing` while the rest runs on."""
    return await clock_advance.advance(
        ctx.db, ctx.billing, ctx.call(), clock_id, body.frozen_time, advances=ctx.services.advances
    )

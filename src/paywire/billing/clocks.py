"""Where an object reads time: its test clock's frozen time, or the wall clock."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.billing.runtime import Call
from paywire.db.schema import test_clocks
from paywire.errors import InvalidRequest


async def now_for(conn: AsyncConnection, call: Call, clock_id: str | None) -> float:
    if clock_id is None:
        return call.wall_now()
    frozen = await conn.scalar(sa.select(test_clocks.c.frozen_time).where(test_clocks.c.id == clock_id))
    return float(frozen) if frozen is not None else call.wall_now()


async def check_clock(conn: AsyncConnection, clock_id: str, livemode: bool, param: str) -> None:
    """A 400 unless `clock_id` is a test clock of this mode (test clocks exist in test mode only)."""
    if livemode:
        raise InvalidRequest("test clocks exist in test mode only", param=param)
    found = await conn.scalar(
        sa.select(test_clocks.c.id).where(test_clocks.c.id == clock_id, test_clocks.c.livemode == livemode)
    )
    if found is None:
        raise InvalidRequest(f"no such test clock: {clock_id!r}", param=param)

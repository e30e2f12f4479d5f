"""`page`/`size` lists answering `{count, list, paging}`, newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.errors import InvalidRequest

DEFAULT_SIZE = 20
MAX_SIZE = 100


@dataclass(frozen=True)
class Page:
    page: int = 1
    size: int = DEFAULT_SIZE

    def __post_init__(self) -> None:
        if self.page < 1:
            raise InvalidRequest("page must be 1 or more", param="page")
        if not 1 <= self.size <= MAX_SIZE:
            raise InvalidRequest(f"size must be between 1 and {MAX_SIZE}", param="size")


async def paginate(
    conn: AsyncConnection,
    query: sa.Select[Any],
    order_by: sa.ColumnElement[Any],
    page: Page,
    render: Callable[[sa.RowMapping], dict[str, Any]],
    *,
    count: int | None = None,
) -> dict[str, Any]:
    """Run `query` for one page (ordered by `order_by` descending) and its total count (counted
    here unless the caller knows it another way)."""
    if count is None:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    rows = await conn.execute(query.order_by(order_by.desc()).limit(page.size).offset((page.page - 1) * page.size))
    return {
        "count": count or 0,
        "list": [render(row) for row in rows.mappings()],
        "paging": {"page": page.page, "size": page.size},
    }

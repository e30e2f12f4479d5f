"""Paged lists: the API's `page`/`size` lists answering `{count, list, paging}`, and the
dashboard's keyset pages (by `seq`, older/newer links). Newest first, both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


# --- keyset pages (the dashboard's lists) ------------------------------------------------------

KEYSET_SIZE = 50


@dataclass(frozen=True)
class Cursor:
    """Keyset paging: `before` (older than this seq) or `after` (newer than it), newest first."""

    before: int | None = None
    after: int | None = None
    size: int = KEYSET_SIZE


@dataclass
class KeysetPage:
    rows: Sequence[Any]
    older: int | None  # seq to pass as `before` for the next older page
    newer: int | None  # seq to pass as `after` for the next newer page


def _seq(row: Any) -> int:
    return int(row._mapping["seq"])


async def keyset(
    conn: AsyncConnection, query: sa.Select[Any], seq: sa.ColumnElement[int], cursor: Cursor
) -> KeysetPage:
    """One page of `query`, newest first, by `seq` < before or > after: an index range, never
    OFFSET, and no COUNT(*) of the whole table."""
    n = cursor.size
    if cursor.after is not None:
        rows = list((await conn.execute(query.where(seq > cursor.after).order_by(seq.asc()).limit(n + 1))).all())
        more_newer = len(rows) > n
        rows = rows[:n][::-1]
        return KeysetPage(rows, _seq(rows[-1]) if rows else None, _seq(rows[0]) if rows and more_newer else None)
    if cursor.before is not None:
        query = query.where(seq < cursor.before)
    rows = list((await conn.execute(query.order_by(seq.desc()).limit(n + 1))).all())
    more_older = len(rows) > n
    rows = rows[:n]
    return KeysetPage(
        rows,
        _seq(rows[-1]) if rows and more_older else None,
        _seq(rows[0]) if rows and cursor.before is not None else None,
    )

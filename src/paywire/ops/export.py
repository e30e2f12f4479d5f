"""`paywire export`: events created in [since, until), as JSON lines the way the API renders them.

Pages are read by keyset on `seq` (`seq > last ORDER BY seq LIMIT page`), each in its own short
read transaction, so a million events never sit in memory nor hold one snapshot open for long.
Both modes are exported (each line says `livemode`); `type` is a type, or a prefix ending in `*`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import events
from paywire.events import log as event_log

PAGE = 1000


def _where(since: int, until: int, type: str | None) -> sa.ColumnElement[bool]:
    condition = sa.and_(events.c.created >= since, events.c.created < until)
    if type:
        if type.endswith("*"):
            condition = sa.and_(condition, events.c.type.startswith(type[:-1], autoescape=True))
        else:
            condition = sa.and_(condition, events.c.type == type)
    return condition


async def count(db: Database, since: int, until: int, type: str | None = None) -> int:
    async with db.read() as conn:
        query = sa.select(sa.func.count()).select_from(events).where(_where(since, until, type))
        return int(await conn.scalar(query) or 0)


async def pages(
    db: Database, since: int, until: int, type: str | None = None, *, page: int = PAGE
) -> AsyncIterator[list[bytes]]:
    """The events' JSON lines (no newline), oldest first, `page` at a time."""
    where = _where(since, until, type)
    last = 0
    while True:
        query = event_log.select_events_json().add_columns(events.c.seq).where(where, events.c.seq > last)
        async with db.read() as conn:
            rows = (await conn.execute(query.order_by(events.c.seq).limit(page))).all()
        if not rows:
            return
        last = int(rows[-1].seq)
        yield [event_log.render_json(row._mapping) for row in rows]
        if len(rows) < page:
            return


async def export(
    db: Database,
    write: Callable[[bytes], object],
    since: int,
    until: int,
    type: str | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    page: int = PAGE,
) -> int:
    """Write each event as one JSON line through `write`; returns how many were written."""
    written = 0
    async for lines in pages(db, since, until, type, page=page):
        write(b"".join(line + b"\n" for line in lines))
        written += len(lines)
        if progress is not None:
            progress(written)
    return written

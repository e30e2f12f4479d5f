"""The EventBus source inside the Paywire process: reads the event log from the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import event_consumers, events
from paywire.event import Event
from paywire.events import log as event_log

logger = logging.getLogger("paywire.eventbus")


def consumer_scope(livemode: bool | None) -> str:
    return "all" if livemode is None else ("live" if livemode else "test")


async def stored_position(db: Database, name: str, livemode: bool | None) -> sa.Row[Any] | None:
    async with db.read() as conn:
        return (
            await conn.execute(
                sa.select(event_consumers).where(
                    event_consumers.c.name == name, event_consumers.c.scope == consumer_scope(livemode)
                )
            )
        ).first()


async def store_position(
    db: Database, name: str, livemode: bool | None, seq: int, event_id: str | None, now: float
) -> None:
    """Upsert the consumer's position; it only ever moves forward."""
    scope = consumer_scope(livemode)
    table = event_consumers
    async with db.transaction() as tx:
        current = await tx.conn.scalar(
            sa.select(table.c.last_seq).where(table.c.name == name, table.c.scope == scope).with_for_update()
        )
        values = {"last_seq": seq, "last_event_id": event_id, "updated": int(now)}
        if current is None:
            await tx.conn.execute(table.insert().values(name=name, scope=scope, **values))
        elif seq > current:
            await tx.conn.execute(
                table.update().where(table.c.name == name, table.c.scope == scope).values(**values)
            )


class LocalSource:
    def __init__(self, db: Database, *, livemode: bool | None = None, poll_interval: float = 0.5) -> None:
        self.db = db
        self.livemode = livemode
        self.poll_interval = poll_interval

    async def position_of(self, name: str) -> int | None:
        row = await stored_position(self.db, name, self.livemode)
        return None if row is None else int(row.last_seq)

    async def head(self) -> int:
        async with self.db.read() as conn:
            return await event_log.last_seq(conn)

    async def events(self, after: int) -> AsyncIterator[tuple[int, Event]]:
        while True:
            snapshot = self.db.signal.snapshot()
            try:
                async with self.db.read() as conn:
                    rows = await event_log.read_after(conn, after, livemode=self.livemode)
            except Exception:  # database restarting: keep trying, lose nothing
                logger.warning("event log unavailable; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for row in rows:
                after = row.seq
                yield row.seq, Event.from_dict(event_log.render(row))
            if not rows:
                await self.db.signal.wait(snapshot, self.poll_interval)

    async def save_position(self, name: str, position: int) -> None:
        async with self.db.read() as conn:
            event_id = await conn.scalar(sa.select(events.c.id).where(events.c.seq == position))
        await store_position(self.db, name, self.livemode, position, event_id, time.time())

    async def close(self) -> None:
        return None

"""The EventBus source inside the Paywire process: reads the event log from the database.

Live, every bus of the process takes its events from the process's one event reader (the
stream hub, shared with the open event streams): N buses at the same position cost one read
per commit, not N. A bus behind the hub's window (it resumed from far back, or its handlers are
slow) reads pages on its own until it has caught up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.db.schema import event_consumers, events
from paywire.events import log as event_log
from paywire.events import stream_hub
from paywire.events.event import Event

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
            await tx.conn.execute(table.update().where(table.c.name == name, table.c.scope == scope).values(**values))


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
        hub = stream_hub.hub_for(self.db)
        hub.subscribe()
        try:
            while True:
                snapshot = hub.snapshot()
                if hub.covers(after):  # live: the hub's window, filtered here
                    # Taken together, before any yield: the hub may read more while handlers run.
                    entries, through = hub.after(after), hub.position
                    for entry in entries:
                        if self.livemode is None or entry.livemode == self.livemode:
                            yield entry.seq, entry.event
                        after = entry.seq
                    after = max(after, through)
                    if not entries:
                        await hub.wait(snapshot)
                    continue
                if hub.starting():  # its first read is on its way: the window will cover us
                    await hub.wait(snapshot)
                    continue
                # Behind the window (or the hub is not running): pages of our own.
                signalled = self.db.signal.snapshot()
                try:
                    async with self.db.read() as conn:
                        tip = await event_log.last_seq(conn)  # first: every event up to it is committed
                        rows = await event_log.read_after(conn, after, livemode=self.livemode, limit=stream_hub.PAGE)
                except Exception:  # database restarting: keep trying, lose nothing
                    logger.warning("event log unavailable; retrying", exc_info=True)
                    await asyncio.sleep(1.0)
                    continue
                for row in rows:
                    after = row.seq
                    yield row.seq, Event.from_dict(event_log.render(row))
                if len(rows) >= stream_hub.PAGE:
                    continue
                after = max(after, tip)  # everything of this mode up to `tip` is handed out
                if not hub.covers(after):
                    await self.db.signal.wait(signalled, self.poll_interval)
        finally:
            hub.unsubscribe()

    async def save_position(self, name: str, position: int) -> None:
        async with self.db.read() as conn:
            event_id = await conn.scalar(sa.select(events.c.id).where(events.c.seq == position))
        await store_position(self.db, name, self.livemode, position, event_id, time.time())

    async def close(self) -> None:
        return None

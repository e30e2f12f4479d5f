"""Which destinations get an event: the enabled ones of its mode, cached per process.

`events.log.append` runs in every state change; reading every enabled destination each time
cost a query returning all of them per write (N events x M destinations). The list is cached,
keyed by the token of `destination_versions`, which every write that changes the list (create,
update, delete, disable) replaces inside its own transaction (`bump`). An append reads the token
(one primary-key row) in its transaction and re-reads the list only when it changed, so with
several processes on PostgreSQL each sees a change as soon as it would have seen the row itself.
The token is random, not a counter: a database dropped and made again never repeats one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.schema import destination_versions, webhook_endpoints
from paywire.events import catalogue

e = webhook_endpoints
v = destination_versions


@dataclass(frozen=True, slots=True)
class Target:
    id: str
    enabled_events: tuple[str, ...]
    ordered: bool  # ordering "per_object"


@dataclass(slots=True)
class Targets:
    """The enabled destinations of one mode, oldest first, with who gets each event type.

    Cached with the list, so matching an event's type against every destination's
    `enabled_events` is done once per type while the list stands, not once per appended event
    (75 ms of CPU per write at 10,000 destinations, measured).
    """

    all: list[Target]
    ordered: frozenset[str]  # ids with ordering "per_object"
    _by_type: dict[str, list[str]] = field(default_factory=dict)

    def matching(self, event_type: str) -> list[str]:
        """The ids that get `event_type`, oldest first (shared: never change the list).
        Bounded: one entry per catalogue type (`append` refuses others)."""
        found = self._by_type.get(event_type)
        if found is None:
            found = [t.id for t in self.all if catalogue.matches(t.enabled_events, event_type)]
            self._by_type[event_type] = found
        return found


# (database url, livemode) → (token, targets). Bounded by the databases a process talks to.
_cache: dict[tuple[str, bool], tuple[str, Targets]] = {}


async def bump(conn: AsyncConnection) -> None:
    """The enabled destinations changed in this transaction: every process re-reads them."""
    token = secrets.token_hex(16)
    result = await conn.execute(v.update().where(v.c.id == 1).values(token=token))
    if not result.rowcount:
        await conn.execute(v.insert().values(id=1, token=token))


TOKEN = sa.select(v.c.token).where(v.c.id == 1)  # (for a caller that reads it with more, as `events.log`)


async def token(conn: AsyncConnection) -> str | None:
    """The token every change to the enabled destinations replaces (`bump`); None before any."""
    return await conn.scalar(TOKEN)


async def enabled(conn: AsyncConnection, livemode: bool) -> Targets:
    """The enabled destinations of this mode, oldest first (cached while the token stands)."""
    return await enabled_at(conn, livemode, await token(conn))


async def enabled_at(conn: AsyncConnection, livemode: bool, token_now: str | None) -> Targets:
    """`enabled`, given the token this transaction read (`TOKEN`)."""
    key = (str(conn.engine.url), livemode)
    cached = _cache.get(key)
    if token_now is not None and cached is not None and cached[0] == token_now:
        return cached[1]
    rows = await conn.execute(
        sa.select(e.c.id, e.c.enabled_events, e.c.ordering)
        .where(e.c.livemode == livemode, e.c.status == "enabled")
        .order_by(e.c.seq)
    )
    listed = [Target(r.id, tuple(r.enabled_events), r.ordering == "per_object") for r in rows]
    found = Targets(listed, frozenset(t.id for t in listed if t.ordered))
    if token_now is not None:
        _cache[key] = (token_now, found)
    return found

"""The EventBus source for another process: a Paywire server's `GET /api/events/stream` (SSE).

It talks to the server through the SDK (`AsyncPaywire`): the same key and URL settings, the same
typed errors and the same retry policy as every other call, here told never to give up, since a
consumer should outlive a server restart. Positions are event ids. A named consumer's position
lives server-side (`/api/event-consumers/{name}`), so a restarted process resumes where it left off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterable

import httpx

from paywire.events.event import Event
from paywire.sdk.client import AsyncPaywire
from paywire.sdk.errors import APIConnectionError, NotFoundError, RateLimitError, ServerError
from paywire.sdk.retries import RetryPolicy

log = logging.getLogger("paywire.eventbus")

FROM_START = "start"  # the server's `after=start`: from the first event

# A cut or a server that is down or busy: reconnect. A refusal (a bad key, an unknown position)
# is raised as the SDK's typed error, since retrying will not help.
_RECONNECT = (httpx.HTTPError, APIConnectionError, ServerError, RateLimitError, ValueError)


class RemoteSource:
    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        types: Iterable[str] | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.types = sorted(types) if types else None
        self.policy = RetryPolicy(max_retries=sys.maxsize, initial_delay=reconnect_delay, max_delay=max_reconnect_delay)
        self.client = AsyncPaywire(api_key, url, timeout=10.0, transport=transport, retry_policy=self.policy)

    async def position_of(self, name: str) -> str | None:
        try:
            body = await self.client.request("GET", f"/api/event-consumers/{name}")
        except NotFoundError:
            return None
        last: str | None = body["last_event_id"]
        return last or FROM_START  # stored before the first event: everything is new

    async def head(self) -> str:
        """Where "now" is: the last event id, or FROM_START when there is none yet."""
        events = (await self.client.request("GET", "/api/events", params={"size": 1}))["list"]
        return str(events[0]["id"]) if events else FROM_START

    async def save_position(self, name: str, position: str) -> None:
        last_event_id = None if position == FROM_START else position
        await self.client.request("PUT", f"/api/event-consumers/{name}", json={"last_event_id": last_event_id})

    async def events(self, after: str) -> AsyncIterator[tuple[str, Event]]:
        """Every event after `after`, reconnecting (from the last one received) when cut off."""
        failures = 0
        while True:
            params = {"after": after, "types": ",".join(self.types) if self.types else None}
            try:
                async with self.client.stream("/api/events/stream", params=params) as messages:
                    failures = 0
                    async for kind, data in messages:
                        if kind == "ready":
                            continue
                        event = Event.from_dict(json.loads(data))
                        after = event.id
                        yield event.id, event
            except _RECONNECT as exc:
                log.warning("event stream interrupted (%s); reconnecting", exc)
            # Also after a stream the server ended (a restart drains its streams first): an
            # immediate reconnect could reach the old server while it is still shutting down.
            failures += 1
            await asyncio.sleep(self.policy.backoff(failures))

    async def close(self) -> None:
        await self.client.close()

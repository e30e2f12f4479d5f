"""The EventBus source for another process: a Paywire server's `GET /api/events/stream` (SSE).

Positions are event ids. A named consumer's position lives server-side
(`/api/event-consumers/{name}`), so a restarted process resumes where it left off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx

from paywire.event import Event

log = logging.getLogger("paywire.eventbus")

FROM_START = "start"  # the server's `after=start`: from the first event


class RemoteError(Exception):
    """The server refused the stream (bad key, unknown position…): retrying will not help."""


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
        base_url = url or os.environ.get("PAYWIRE_URL") or "http://127.0.0.1:8800"
        key = api_key or os.environ.get("PAYWIRE_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key= or set PAYWIRE_API_KEY")
        self.types = sorted(types) if types else None
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(10.0, read=60.0),  # the server sends a heartbeat every 15 s
            transport=transport,
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call, retried while the server is unreachable or answers 5xx."""
        delay = self.reconnect_delay
        while True:
            try:
                response = await self._client.request(method, path, **kwargs)
                if response.status_code < 500:
                    return response
                log.warning("%s %s answered %d; retrying in %.1fs", method, path, response.status_code, delay)
            except httpx.TransportError as exc:
                log.warning("%s %s failed (%s); retrying in %.1fs", method, path, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    async def position_of(self, name: str) -> str | None:
        response = await self._request("GET", f"/api/event-consumers/{name}")
        if response.status_code == 404:
            return None
        _raise_for(response)
        last: str | None = response.json()["last_event_id"]
        return last or FROM_START  # stored before the first event: everything is new

    async def head(self) -> str:
        """Where "now" is: the last event id, or FROM_START when there is none yet."""
        response = await self._request("GET", "/api/events", params={"size": 1})
        _raise_for(response)
        events = response.json()["list"]
        return str(events[0]["id"]) if events else FROM_START

    async def save_position(self, name: str, position: str) -> None:
        last_event_id = None if position == FROM_START else position
        response = await self._request("PUT", f"/api/event-consumers/{name}", json={"last_event_id": last_event_id})
        _raise_for(response)

    async def events(self, after: str) -> AsyncIterator[tuple[str, Event]]:
        """Every event after `after`, reconnecting (from the last one received) when cut off."""
        delay = self.reconnect_delay
        while True:
            params: dict[str, str] = {"after": after}
            if self.types:
                params["types"] = ",".join(self.types)
            try:
                async with self._client.stream("GET", "/api/events/stream", params=params) as response:
                    if response.status_code in (401, 403, 404, 400):
                        await response.aread()
                        _raise_for(response)
                    response.raise_for_status()
                    delay = self.reconnect_delay
                    async for kind, data in _parse_sse(response.aiter_bytes()):
                        if kind == "ready":
                            continue
                        event = Event.from_dict(json.loads(data))
                        after = event.id
                        yield event.id, event
            except RemoteError:
                raise
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("event stream interrupted (%s); reconnecting in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    async def close(self) -> None:
        await self._client.aclose()


async def _parse_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(event type, data) for each message of a text/event-stream.

    Splits the raw bytes itself instead of httpx's `aiter_lines`, which decodes and yields every
    line (~4 per event) through several generators. (Its gain was within the noise of
    bench/eventbus.py, whose throughput is bound by the writer.)
    """
    buffer = b""
    async for chunk in chunks:
        if b"\r" in chunk:  # (the spec allows CRLF and CR line ends; Paywire sends LF)
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer += chunk
        if b"\n\n" not in buffer:
            continue
        *messages, buffer = buffer.split(b"\n\n")
        for message in messages:
            kind, data = "message", list[bytes]()
            for line in message.split(b"\n"):
                if not line or line.startswith(b":"):
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"event":
                    kind = value.decode()
                elif field == b"data":
                    data.append(value)
            if data:
                yield kind, b"\n".join(data)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    error = f"{response.request.method} {response.request.url.path}: {response.status_code} {message}"
    if response.status_code in (400, 401, 403, 404):
        raise RemoteError(error)
    raise httpx.HTTPStatusError(error, request=response.request, response=response)

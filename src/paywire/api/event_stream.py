"""The body of `GET /api/events/stream`: an ASGI response whose live part the stream hub writes.

StreamingResponse costs ~50 µs per chunk per stream (a task per stream woken for every chunk,
an anyio task group listening for the disconnect, the chunk passed down through every
middleware's `send` and h11's framing): with 1,000 streams, 50 ms of the one event loop per
wake-up. Here the response start, the `ready` message, the pages a stream reads while it is
behind the hub's window, and the end go through the ASGI `send` as any response's do; while the
stream is live, the hub (`paywire.events.stream_hub.StreamHub.follow`) writes each wake-up's
chunk straight to the connection's transport, chunk-framed once for every stream of a group.
The middleware only look at the response start, so nothing they do is skipped.

That needs uvicorn's h11 connection, found under the ASGI `send` (`_uvicorn_cycle`). Under any
other server (or HTTP/1.0, or a middleware that is not a plain `send` wrapper) the stream's
own task sends every chunk through `send`, as before, and checks for a disconnect once a second.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from h11._writers import ChunkedWriter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import RequestResponseCycle

from paywire.services import Lifecycle


class Channel:
    """How a stream's bytes reach its client."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope, self._receive, self._send = scope, receive, send

    async def send(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def disconnected(self) -> bool:
        """(~50 µs: call it now and then, not per message.)"""
        return await Request(self._scope, self._receive).is_disconnected()

    def follower(self, livemode: bool, types: frozenset[str] | None, lifecycle: Lifecycle) -> DirectFollower | None:
        """A follower for the hub writing to this connection directly, if the server allows it."""
        cycle = _uvicorn_cycle(self._send)
        if cycle is None or self._scope["method"] != "GET":
            return None
        if not isinstance(getattr(cycle.conn, "_writer", None), ChunkedWriter):  # (HTTP/1.0: no chunks)
            return None
        return DirectFollower(cycle, livemode, types, lifecycle)


class DirectFollower:
    """A `stream_hub.Follower` writing chunk-framed bytes to uvicorn's transport (h11 would
    frame them the same: `<hex length>\\r\\n<data>\\r\\n`; it writes the final `0\\r\\n\\r\\n`
    when the response ends through `send`)."""

    def __init__(
        self, cycle: RequestResponseCycle, livemode: bool, types: frozenset[str] | None, lifecycle: Lifecycle
    ) -> None:
        self.livemode, self.types = livemode, types
        self._cycle, self._transport, self._flow = cycle, cycle.transport, cycle.flow
        self._lifecycle = lifecycle

    def gone(self) -> bool:
        return self._cycle.disconnected or self._transport.is_closing() or self._lifecycle.draining

    def write(self, data: bytes) -> bool:
        if self._flow.write_paused:  # over the transport's high-water mark: the client is slow
            return False
        self._transport.write(_chunked(data))
        return True

    async def drain(self) -> None:
        """Until the client has taken enough of what was written (or has gone)."""
        await self._flow.drain()


@functools.lru_cache(maxsize=16)
def _chunked(data: bytes) -> bytes:
    """One framing per chunk, shared by every stream it is written to (bytes cache their hash)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _uvicorn_cycle(send: Any) -> RequestResponseCycle | None:
    """uvicorn's request-response cycle under `send`, if every layer between is a closure
    holding the next as `send` (Starlette's and our middleware's wrappers, which only look at
    the response start); None otherwise."""
    for _ in range(32):
        owner = getattr(send, "__self__", None)
        if isinstance(owner, RequestResponseCycle):
            return owner
        code, cells = getattr(send, "__code__", None), getattr(send, "__closure__", None)
        if code is None or not cells or "send" not in code.co_freevars:
            return None
        send = cells[code.co_freevars.index("send")].cell_contents
    return None


class EventStreamResponse(Response):
    """`text/event-stream`, its body written by `run(channel)` (StreamingResponse's headers)."""

    media_type = "text/event-stream"

    def __init__(self, run: Callable[[Channel], Awaitable[None]], headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._run = run
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await self._run(Channel(scope, receive, send))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

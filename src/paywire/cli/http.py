"""The HTTP server's guards against slow and greedy clients (used by `paywire serve`).

uvicorn 0.54 bounds the idle time between requests on a keep-alive connection
(`timeout_keep_alive`), the size of a request head (h11's `max_incomplete_event_size`) and the
requests served at once (`limit_concurrency`), but it has no deadline for receiving a request
head: its keep-alive timer starts only after a response and stops at the first byte of the next
request, and nothing times a new connection. A client that opens connections and sends a few
header bytes now and then (slowloris), or none at all, holds each one for ever. `HeaderTimeoutH11`
adds that deadline to uvicorn's h11 protocol: a connection must deliver a complete request head
within `header_timeout` seconds of being opened, and on a kept-alive connection within
`header_timeout` of the first byte of the next request; else it is closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

from paywire.events import socket_writes

log = logging.getLogger("paywire.http")


@dataclass(frozen=True)
class HttpLimits:
    """`paywire serve`'s connection settings (each a CLI flag, see docs/deployment.md)."""

    header_timeout: float = 10.0  # seconds to receive a request head (request line and headers)
    keep_alive_timeout: int = 5  # seconds an idle keep-alive connection is kept
    max_header_bytes: int = 16 * 1024  # largest request head; larger ones answer 400
    limit_concurrency: int | None = 2048  # connections (or requests) at once; past it, new requests get 503


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head (see the module docstring)."""

    header_timeout: float = HttpLimits.header_timeout
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _TransportInScope(self.app, transport)
        self._arm_header_timer()  # a new connection: its first request head is due

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.trailing_data[0]:  # part of a pipelined request head is already here
            self._follow_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _follow_head(self) -> None:
        """Time a head while one is arriving (h11: the client is IDLE); stop once it is complete."""
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._header_timer is None:
                self._arm_header_timer()
        else:
            self._cancel_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _head_timed_out(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closing a connection that sent no complete request head in %s s", self.header_timeout)
            self.transport.close()


class _TransportInScope:
    """The app, told which transport each request came on (`scope["extensions"]`): live event
    streams write to its socket from a thread of their own (`paywire.events.socket_writes`)."""

    __slots__ = ("app", "transport")

    def __init__(self, app: ASGI3Application, transport: asyncio.Transport) -> None:
        self.app, self.transport = app, transport

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        extensions: dict[str, Any] = scope.setdefault("extensions", {})  # type: ignore[typeddict-item, assignment]
        extensions[socket_writes.EXTENSION] = self.transport
        await self.app(scope, receive, send)


def protocol_class(limits: HttpLimits) -> type[HeaderTimeoutH11]:
    """`HeaderTimeoutH11` with this head timeout (uvicorn builds protocols from a class)."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": limits.header_timeout})

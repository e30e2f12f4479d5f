"""A live event stream the stream hub writes to itself (`StreamHub.serve`).

Each wake-up of the hub used to wake one task per stream, for it to send the same bytes as its
neighbours through the ASGI send chain: ~50 µs a stream, most of it the socket write. An attached
stream (a sink) instead gives the hub its position, its filters and a duplicate of its socket's
descriptor, and the hub writes to every attached stream at each wake-up, in batches on the
writes thread (`paywire.events.socket_writes`).

The hub lets go of a sink (`release`) whenever its own task must take over: the client is slow
(the socket took part of a write, the rest is in the transport), the stream fell behind the hub's
window, the hub stopped, the server drains, or the client left. The stream's task then waits for
the batch holding its last write (`written`), and goes on by itself from `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

from starlette.types import Send


class Sink:
    """One stream's position and filters, and the socket the hub writes to."""

    __slots__ = (
        "fd",
        "gone",
        "in_flight",
        "last_sent",
        "livemode",
        "released",
        "send",
        "seq",
        "stopping",
        "transport",
        "wanted",
    )

    def __init__(
        self,
        send: Send,
        seq: int,
        livemode: bool,
        wanted: frozenset[str] | None,
        stopping: Callable[[], bool],
    ) -> None:
        self.send = send
        self.seq = seq  # every event of this stream up to here is written (or being written)
        self.livemode = livemode
        self.wanted = wanted  # event types, or None for all
        self.stopping = stopping  # the server is draining: the stream ends
        self.released = asyncio.Event()  # set when the hub lets go of the stream
        self.gone = False  # the client disconnected
        self.last_sent = time.monotonic()
        # Set by `use_socket`: the connection's transport and our own duplicate of its socket's
        # descriptor, for writes on the writes thread (`paywire.events.socket_writes`).
        self.transport: asyncio.WriteTransport | None = None
        self.fd: int | None = None
        self.in_flight: asyncio.Future[list[bytes | None]] | None = None  # a batch holding a write of ours

    def use_socket(self, transport: asyncio.WriteTransport) -> None:
        """Let the hub write to this stream's socket from the writes thread."""
        sock = transport.get_extra_info("socket")
        # Never under TLS: bytes written to the socket itself would bypass the encryption.
        plain = transport.get_extra_info("ssl_object") is None and transport.get_extra_info("sslcontext") is None
        if sock is not None and plain and not transport.is_closing():
            self.transport, self.fd = transport, os.dup(sock.fileno())

    def direct(self) -> bool:
        """Can the next write go straight to the socket? Not while the transport holds bytes of
        its own (they would be overtaken)."""
        transport = self.transport
        return transport is not None and self.fd is not None and transport.get_write_buffer_size() == 0

    def close(self) -> None:
        """The stream has ended (after `written`): close our descriptor."""
        fd, self.fd, self.transport = self.fd, None, None
        if fd is not None:
            os.close(fd)

    def release(self) -> None:
        self.released.set()

    async def written(self) -> None:
        """Until the hub's batch holding a write to this stream is done (on the writes thread)."""
        if self.in_flight is not None:
            with contextlib.suppress(Exception):  # (its outcome is the hub's to read)
                await asyncio.shield(self.in_flight)

"""Raw asyncio HTTP receivers on 127.0.0.1 that misbehave in one way each, and a healthy one.

Raw sockets rather than a web framework, so each can do what no framework does willingly:
reset the connection, hang forever, stream a 50 MB body, or never read the request at all.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

HUGE_BODY = 50 * 1024 * 1024
CHUNK = b"x" * 65536

Behaviour = Callable[["HostileReceiver", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(found.group(1))) if found else b""
    return head, body


def _webhook_id(head: bytes) -> str:
    found = re.search(rb"(?im)^webhook-id:\s*(\S+)", head)
    return found.group(1).decode() if found else ""


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes = b"", headers: str = "") -> None:
    writer.write(
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n{headers}\r\n".encode() + body
    )
    await writer.drain()


async def healthy(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head, _ = await _read_request(reader)
    rx.webhook_ids.append(_webhook_id(head))
    await _answer(writer, 200, b"ok")


async def server_error(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    rx.requests += 1
    await _answer(writer, 500, b"internal error")


async def gone(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    rx.requests += 1
    await _answer(writer, 410, b"gone")


def redirect_to(location: str) -> Behaviour:
    async def redirect(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        rx.requests += 1
        await _answer(writer, 307, b"", f"location: {location}\r\n")

    return redirect


async def hang(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then never answer."""
    await _read_request(reader)
    rx.requests += 1
    await rx.closing.wait()


async def deaf(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept the connection and never read a byte of the request."""
    rx.requests += 1
    await rx.closing.wait()


async def reset(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then reset the connection (RST, not a clean close)."""
    await _read_request(reader)
    rx.requests += 1
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def huge(rx: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 with a 50 MB body, written as fast as the client takes it; counts what got out."""
    await _read_request(reader)
    rx.requests += 1
    writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {HUGE_BODY}\r\n\r\n".encode())
    sent = 0
    while sent < HUGE_BODY:
        writer.write(CHUNK)
        await writer.drain()  # raises once the client has hung up
        sent += len(CHUNK)
        rx.bytes_sent = max(rx.bytes_sent, sent)


@dataclass
class HostileReceiver:
    behaviour: Behaviour
    url: str = ""
    requests: int = 0
    open: int = 0  # connections being handled right now
    bytes_sent: int = 0  # the most body one connection took (`huge`)
    webhook_ids: list[str] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set by stop(): handlers end
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> HostileReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.open += 1
        try:
            await self.behaviour(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what these receivers are for
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.transport.abort()

    async def stop(self) -> None:
        """Stop listening and end every open connection (handlers return on their own)."""
        self.closing.set()
        if self._server:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for _ in range(100):
            if not self.open:
                break
            await asyncio.sleep(0.01)

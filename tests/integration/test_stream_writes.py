"""Live streams are written by the hub, on the writes thread: every event once, in order, even for a
client too slow to take them (the socket's buffer fills, the rest goes through flow control)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from paywire.events import log as event_log
from paywire.events import socket_writes, stream_hub
from tests.conftest import Server
from tests.integration.test_stream import _customers, _event_ids, _take
from tests.integration.test_stream_hub import _streams

EVENT_ID = re.compile(rb"\nid: (evt_\w+)\n")


class WritesSeen:
    """Wraps `socket_writes.write_all`: counts the writes made on the thread, and those the
    socket took only part of."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes = self.partial = 0
        real = socket_writes.write_all

        def counting(batch: list[tuple[int, bytes]]) -> list[bytes | None]:
            outcomes = real(batch)
            self.writes += len(batch)
            self.partial += sum(1 for o in outcomes if o)
            return outcomes

        monkeypatch.setattr(socket_writes, "write_all", counting)


async def test_live_events_are_written_on_the_writes_thread(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = WritesSeen(monkeypatch)
    async with server.client() as streamer, _streams(streamer, 5) as streams:
        await asyncio.gather(*(_take(s, 1) for s in streams))  # ready
        await _customers(api, 1)
        await asyncio.gather(*(_take(s, 1) for s in streams))  # now each is live, with the hub
        more = await _customers(api, 3)
        got = await asyncio.gather(*(_take(s, 3) for s in streams))
    for messages in got:
        assert [m["object_id"] for _, m in messages] == more
    assert seen.writes >= 5, seen.writes  # the streams' writes went through the thread


@contextlib.asynccontextmanager
async def _slow_stream(server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A stream whose client takes in little at a time (a tiny receive buffer), raw HTTP/1.1."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    # A small limit: the reader stops taking bytes off the socket once it holds 8 KiB unread.
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(
        f"GET /api/events/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.test_key}\r\n\r\n".encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"event: ready"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        yield reader, writer
    finally:
        writer.close()


async def test_a_slow_client_gets_every_event_once_and_in_order(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = WritesSeen(monkeypatch)
    db = server.app.db
    async with _slow_stream(server) as (reader, _writer):
        await _customers(api, 1)  # the stream goes live with the hub
        await asyncio.sleep(0.3)
        # Large events, faster than the client reads (it reads nothing yet): the socket's
        # buffers fill, a write goes in part, and the rest waits in the server's transport.
        big = "x" * 200_000
        for i in range(40):
            async with db.transaction() as tx:
                await event_log.append(
                    tx,
                    [event_log.NewEvent("invoice.paid", {"id": f"in_slow{i}", "memo": big})],
                    livemode=False,
                    now=time.time(),
                )
            db.signal.notify()
            await asyncio.sleep(0.01)
        ids = (await _event_ids(api))[-41:]  # the customer's and the 40 invoices'
        received, last = bytearray(), f"id: {ids[-1]}\n".encode()
        async with asyncio.timeout(30):
            while last not in received[-(1 << 21) :]:  # (the last event's id line, near the end)
                piece = await reader.read(1 << 20)
                assert piece, "the stream ended"
                received += piece
    assert [m.decode() for m in EVENT_ID.findall(received)] == ids  # every event once, in order
    assert seen.partial >= 1, (seen.writes, seen.partial)  # the slow path was taken
    assert stream_hub.hub_for(db).running

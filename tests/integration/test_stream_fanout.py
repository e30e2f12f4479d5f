"""Live streams written by the stream hub itself (`StreamHub.follow`, `paywire.api.event_stream`):
one rendering per group of streams, slow and gone clients let go, the same bytes as before."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import h11
import httpx
import pytest

from paywire.api import event_stream
from paywire.events import stream_hub
from tests.conftest import Server
from tests.integration.test_stream import _customers, _event_ids, _take
from tests.integration.test_stream_hub import _streams


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


class RawStream:
    """A stream on a plain socket, read only when asked (its receive buffer kept small)."""

    def __init__(self, server: Server, key: str, path: str = "/api/events/stream") -> None:
        url = urlsplit(server.url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((url.hostname or "127.0.0.1", url.port or 80))
        self.sock.setblocking(False)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
        self.conn = h11.Connection(h11.CLIENT)
        self.conn.send(h11.Request(method="GET", target=path, headers=[("Host", "x")]))
        self.body = b""

    async def read_until(self, predicate: Callable[[bytes], bool], seconds: float = 10.0) -> bytes:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(seconds):
            while not predicate(self.body):
                self.conn.receive_data(await loop.sock_recv(self.sock, 65536))
                while True:
                    event = self.conn.next_event()
                    if event is h11.NEED_DATA:
                        break
                    if isinstance(event, h11.Data):
                        self.body += bytes(event.data)
        return self.body

    def close(self) -> None:
        self.sock.close()


async def test_shared_rendering_never_mixes_modes_or_filters(server: Server, api: httpx.AsyncClient) -> None:
    hub = stream_hub.hub_for(server.app.db)
    limits = httpx.Limits(max_connections=20)
    async with (
        server.client(limits=limits) as test,
        server.client(server.live_key, limits=limits) as live,
        _streams(test, 5) as everything,
        _streams(test, 5, params={"types": "product.created"}) as products,
        _streams(live, 4) as live_streams,
    ):
        for stream in [*everything, *products, *live_streams]:
            await _take(stream, 1)  # ready
        await _until(lambda: hub.followers == 14)
        renders, fan_outs, writes = hub.renders, hub.fan_outs, hub.writes
        customers = await _customers(api, 2)
        product = (await api.post("/api/products", json={"name": "p"})).json()["id"]
        live_product = (await live.post("/api/products", json={"name": "live p"})).json()["id"]
        test_ids = (await _event_ids(api))[-3:]
        for stream in everything:
            got = await _take(stream, 3)
            assert [m["id"] for _, m in got] == test_ids
            assert [m["object_id"] for _, m in got] == [*customers, product]
        for stream in products:
            [(kind, message)] = await _take(stream, 1)
            assert kind == "product.created" and message["object_id"] == product
        for stream in live_streams:
            [(kind, message)] = await _take(stream, 1)
            assert kind == "product.created" and message["object_id"] == live_product and message["livemode"] is True
        # Nothing else came first: the next message of each is the next event it wants.
        marker = (await api.post("/api/products", json={"name": "marker"})).json()["id"]
        for stream in [*everything, *products]:
            [(_, message)] = await _take(stream, 1)
            assert message["object_id"] == marker
        # The hub wrote them (not the streams' tasks), rendering once per group, not per stream.
        assert hub.writes - writes >= 14 + 10
        assert hub.renders - renders <= 3 * (hub.fan_outs - fan_outs + 1), (
            hub.renders - renders,
            hub.fan_outs - fan_outs,
        )


async def test_a_client_that_stops_reading_is_let_go_and_catches_up(server: Server, api: httpx.AsyncClient) -> None:
    hub = stream_hub.hub_for(server.app.db)
    stuck = RawStream(server, server.test_key)
    try:
        await stuck.read_until(lambda body: b"event: ready" in body)
        async with server.client() as streamer, _streams(streamer, 1) as [reader]:
            await _take(reader, 1)
            await _until(lambda: hub.followers == 2)
            for following in list(hub._following):  # small kernel buffers (loopback's grow to MBs)
                sock = following.follower._transport.get_extra_info("socket")  # type: ignore[attr-defined]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            big = {f"k{i}": "x" * 500 for i in range(40)}  # ~20 kB per event
            for i in range(20):
                await api.post("/api/customers", json={"name": f"c{i}", "metadata": big})
            ids = (await _event_ids(api))[-20:]
            # The reading stream gets every event while the other's socket is full ...
            got = await _take(reader, 20)
            assert [m["id"] for _, m in got] == ids
            await _until(lambda: hub.followers == 1)  # ... and the hub let go of that one
            # Read at last: it gets every event once, in order, and follows again.
            body = await stuck.read_until(lambda body: ids[-1].encode() in body, 20)
            sent = [line[4:].decode() for line in body.split(b"\n") if line.startswith(b"id: ")]
            assert sent == ids
            await _until(lambda: hub.followers == 2)
    finally:
        stuck.close()


async def test_disconnected_clients_are_noticed_and_released(server: Server, api: httpx.AsyncClient) -> None:
    hub = stream_hub.hub_for(server.app.db)
    raw = [RawStream(server, server.test_key) for _ in range(10)]
    for stream in raw:
        await stream.read_until(lambda body: b"event: ready" in body)
    await _until(lambda: hub.followers == 10)
    for stream in raw[:6]:
        stream.close()
    await _until(lambda: hub.followers == 4)  # noticed by the hub's sweep, at least once a second
    await _customers(api, 1)
    [event_id] = (await _event_ids(api))[-1:]
    for stream in raw[6:]:
        await stream.read_until(lambda body: event_id.encode() in body)
        stream.close()
    await _until(lambda: hub.streams == 0)  # every stream ended, and with them the hub
    await _until(lambda: not hub.running)


async def test_drain_ends_followed_streams(server: Server) -> None:
    hub = stream_hub.hub_for(server.app.db)
    async with server.client() as streamer, _streams(streamer, 3) as streams:
        for stream in streams:
            await _take(stream, 1)
        await _until(lambda: hub.followers == 3)
        server.app.drain()
        for stream in streams:
            async with asyncio.timeout(5):
                assert [m async for m in stream] == []  # the response ends


async def test_the_bytes_are_the_same_whichever_way_they_go(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by the hub, sent by the stream's task (no uvicorn under it), or read on its own
    from behind the window: the same SSE bytes."""
    await _customers(api, 2)
    start = (await _event_ids(api))[0]  # the hub starts after the second: streams from the first catch up
    hub = stream_hub.hub_for(server.app.db)
    direct = RawStream(server, server.test_key, f"/api/events/stream?after={start}")
    await direct.read_until(lambda body: b"event: ready" in body)
    await _until(lambda: hub.followers == 1)
    monkeypatch.setattr(event_stream, "_uvicorn_cycle", lambda _send: None)
    through_asgi = RawStream(server, server.test_key, f"/api/events/stream?after={start}")
    await through_asgi.read_until(lambda body: b"event: ready" in body)
    monkeypatch.undo()
    await _customers(api, 2)
    await api.post("/api/products", json={"name": "p"})
    ids = (await _event_ids(api))[1:]
    monkeypatch.setattr(stream_hub, "WINDOW", 1)  # a stream from the start is behind the window
    behind = RawStream(server, server.test_key, f"/api/events/stream?after={start}")
    try:
        bodies = [await s.read_until(lambda body: ids[-1].encode() in body) for s in (direct, through_asgi, behind)]
        await _until(lambda: hub.followers == 2)  # the direct one, and the one from behind once caught up
        assert bodies[0] == bodies[1] == bodies[2]
        assert bodies[0].count(b"\nevent: ") == len(ids) and bodies[0].endswith(b"\n\n")
    finally:
        for s in (direct, through_asgi, behind):
            s.close()

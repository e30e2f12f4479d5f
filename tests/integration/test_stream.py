"""`GET /api/events/stream`: resume with Last-Event-ID or ?after=, then live; from now without either."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from tests.conftest import Server


async def _messages(client: httpx.AsyncClient, **kwargs: object) -> AsyncGenerator[tuple[str, dict[str, object]]]:
    async with client.stream("GET", "/api/events/stream", **kwargs) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        kind, data = "message", ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                yield kind, json.loads(data)
                kind, data = "message", ""


async def _take(stream: AsyncIterator[tuple[str, dict[str, object]]], n: int) -> list[tuple[str, dict[str, object]]]:
    out = []
    async with asyncio.timeout(10):
        async for message in stream:
            out.append(message)
            if len(out) == n:
                break
    return out


async def _customers(api: httpx.AsyncClient, n: int) -> list[str]:
    return [(await api.post("/api/customers", json={"name": f"c{i}"})).json()["id"] for i in range(n)]


async def _event_ids(api: httpx.AsyncClient) -> list[str]:
    return [e["id"] for e in reversed((await api.get("/api/events", params={"size": 100})).json()["list"])]


async def test_resume_after_an_event_then_live(server: Server, api: httpx.AsyncClient) -> None:
    await _customers(api, 5)
    ids = await _event_ids(api)
    async with server.client() as streamer:
        stream = _messages(streamer, params={"after": ids[1]})
        got = await _take(stream, 4)
        assert got[0] == ("ready", {"last_event_id": ids[1]})
        assert [m["id"] for _, m in got[1:]] == ids[2:5]
        assert all(kind == "customer.created" for kind, _ in got[1:])
        # Live: an event committed now arrives on the open stream.
        live = (await api.post("/api/customers", json={"name": "live"})).json()
        [(kind, message)] = await _take(stream, 1)
        assert kind == "customer.created" and message["object_id"] == live["id"]
        await stream.aclose()


async def test_last_event_id_header_and_from_start(server: Server, api: httpx.AsyncClient) -> None:
    await _customers(api, 3)
    ids = await _event_ids(api)
    async with server.client() as streamer:
        stream = _messages(streamer, headers={"Last-Event-ID": ids[0]})
        got = await _take(stream, 3)
        assert [m["id"] for _, m in got[1:]] == ids[1:]
        await stream.aclose()
        stream = _messages(streamer, params={"after": "start"})
        got = await _take(stream, 4)
        assert [m["id"] for _, m in got[1:]] == ids
        await stream.aclose()


async def test_without_a_position_the_stream_starts_from_now(server: Server, api: httpx.AsyncClient) -> None:
    await _customers(api, 2)
    ids = await _event_ids(api)
    async with server.client() as streamer:
        stream = _messages(streamer)
        [ready] = await _take(stream, 1)
        assert ready == ("ready", {"last_event_id": ids[-1]})
        product = (await api.post("/api/products", json={"name": "new"})).json()
        [(kind, message)] = await _take(stream, 1)
        assert kind == "product.created" and message["object_id"] == product["id"]
        await stream.aclose()


async def test_type_filter_and_mode_isolation(server: Server, api: httpx.AsyncClient) -> None:
    async with server.client() as streamer, server.client(server.live_key) as live:
        stream = _messages(streamer, params={"types": "product.created"})
        await _take(stream, 1)
        await _customers(api, 2)
        await live.post("/api/products", json={"name": "live product"})
        product = (await api.post("/api/products", json={"name": "test product"})).json()
        [(kind, message)] = await _take(stream, 1)
        assert kind == "product.created" and message["object_id"] == product["id"]
        await stream.aclose()


async def test_bad_positions_and_types_are_4xx(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/events/stream", params={"after": "evt_missing"})).status_code == 404
    bad_types = await api.get("/api/events/stream", params={"types": "nope.nope"})
    assert bad_types.status_code == 400 and bad_types.json()["error"]["param"] == "types"

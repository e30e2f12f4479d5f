"""Many open event streams share one reader: a commit costs one query, not one per stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.events import stream_hub
from tests.conftest import Server
from tests.integration.test_stream import _customers, _event_ids, _messages, _take

STREAMS = 50
COMMITS = 12


class EventReads:
    """Counts the statements that read events after a position (the stream's and the hub's)."""

    def __init__(self, server: Server | Database) -> None:
        self.count = 0
        db = server if isinstance(server, Database) else server.app.db
        self.engine = db.engine.sync_engine

    def __enter__(self) -> EventReads:
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM events" in statement and "events.seq >" in statement:
            self.count += 1


def no_hub_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub reads only when a commit wakes it: its fallback polls are put off for the test."""
    monkeypatch.setattr(stream_hub, "POLL_SECONDS", 60.0)
    monkeypatch.setattr(stream_hub, "SQLITE_POLL_SECONDS", 60.0)


@contextlib.asynccontextmanager
async def _streams(
    client: httpx.AsyncClient, n: int, **kwargs: object
) -> AsyncIterator[list[AsyncGenerator[tuple[str, dict[str, object]]]]]:
    streams = [_messages(client, **kwargs) for _ in range(n)]
    try:
        yield streams
    finally:
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]


async def test_many_streams_one_query_per_commit(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_hub_polls(monkeypatch)  # count the reads commits cause, not polls
    await _customers(api, 2)
    limits = httpx.Limits(max_connections=STREAMS + 5)
    async with server.client(limits=limits) as streamer, _streams(streamer, STREAMS) as streams:
        readies = await asyncio.gather(*(_take(s, 1) for s in streams))
        assert all(kind == "ready" for [(kind, _)] in readies)
        # A stream that opens before the hub's first read reads once on its own: let every
        # stream take one event first, so the count below is of live streams only.
        await _customers(api, 1)
        await asyncio.gather(*(_take(s, 1) for s in streams))
        assert stream_hub.hub_for(server.app.db).start is not None
        with EventReads(server) as reads:
            for _ in range(COMMITS):
                await _customers(api, 1)
            ids = (await _event_ids(api))[-COMMITS:]
            got = await asyncio.gather(*(_take(s, COMMITS) for s in streams))
        for messages in got:
            assert [m["id"] for _, m in messages] == ids  # every event, in order, on every stream
        # Reads follow the hub's wake-ups, not the streams: one per stream would be
        # STREAMS x COMMITS = 600. A commit wakes the hub once (PostgreSQL: twice, the in-process
        # signal and the LISTEN/NOTIFY echo of the same commit); a commit that lands while the
        # hub's read is in flight wakes it once more after that read (it may have missed the
        # commit), which a loaded machine makes likely: so at most two reads per wake-up.
        wakes_per_commit = 2 if server.app.db.is_postgres else 1
        assert reads.count <= 2 * wakes_per_commit * COMMITS + 5, reads.count
        assert reads.count < STREAMS, reads.count  # far from one read per stream


async def test_a_stream_far_behind_catches_up_then_goes_live(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_hub, "PAGE", 4)  # the catch-up reads several pages
    monkeypatch.setattr(stream_hub, "WINDOW", 6)  # and starts before the hub's window
    async with server.client() as streamer, _streams(streamer, 1) as [live]:
        await _take(live, 1)
        await _customers(api, 15)
        ids = await _event_ids(api)
        async with _streams(streamer, 1, params={"after": "start"}) as [behind]:
            got = await _take(behind, 1 + len(ids))
            assert [m["id"] for _, m in got[1:]] == ids
            more = await _customers(api, 2)
            got = await _take(behind, 2)
            assert [m["object_id"] for _, m in got] == more
        # The live stream saw everything once, in order, throughout.
        got = await _take(live, len(ids) + 2)
        assert [m["id"] for _, m in got] == ids[: len(ids)] + [m["id"] for _, m in got[-2:]]
        assert [m["object_id"] for _, m in got[-2:]] == more


async def test_a_stopped_hub_leaves_open_streams_reading_on_their_own(server: Server, api: httpx.AsyncClient) -> None:
    async with server.client() as streamer, _streams(streamer, 1) as [stream]:
        await _take(stream, 1)
        first = await _customers(api, 1)
        assert [m["object_id"] for _, m in await _take(stream, 1)] == first
        await stream_hub.hub_for(server.app.db).stop()
        more = await _customers(api, 2)
        assert [m["object_id"] for _, m in await _take(stream, 2)] == more


async def test_streams_opening_together_wait_for_the_hubs_first_read(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_hub_polls(monkeypatch)  # count the reads opening causes, not polls
    await _customers(api, 1)
    limits = httpx.Limits(max_connections=STREAMS + 5)
    with EventReads(server) as reads:
        async with server.client(limits=limits) as streamer, _streams(streamer, STREAMS) as streams:
            readies = await asyncio.gather(*(_take(s, 1) for s in streams))
            assert all(kind == "ready" for [(kind, _)] in readies)
            await _customers(api, 1)
            got = await asyncio.gather(*(_take(s, 1) for s in streams))
    [newest] = (await _event_ids(api))[-1:]
    assert all(m["id"] == newest for [(_, m)] in got)  # every stream had the event
    # Before: every stream opening while the hub started read on its own (STREAMS reads or so).
    # Now they wait for the hub's first read, and the one commit costs the hub one or two reads.
    assert reads.count <= 2 * (2 if server.app.db.is_postgres else 1) + 3, reads.count


async def test_a_stream_whose_client_has_gone_ends_on_the_server(server: Server, api: httpx.AsyncClient) -> None:
    # The stream route no longer polls `request.is_disconnected()`: the server must still end
    # (and unsubscribe) an idle stream as soon as its client closes the connection.
    hub = stream_hub.hub_for(server.app.db)
    async with server.client() as streamer, _streams(streamer, 3) as streams:
        await asyncio.gather(*(_take(s, 1) for s in streams))
        assert hub.streams == 3
    async with asyncio.timeout(3):  # no event is sent meanwhile: only the disconnect ends them
        while hub.streams:
            await asyncio.sleep(0.02)
    assert not hub.running  # the last stream gone: the hub stopped reading

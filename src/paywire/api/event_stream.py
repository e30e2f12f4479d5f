"""The response of `GET /api/events/stream`: Server-Sent Events, oldest first, then live.

A stream catching up (it started far back, or its client was slow) reads pages of events itself
and writes them at its client's pace. Once it is within the stream hub's window it hands itself to
the hub (`StreamHub.serve`), which writes the live events to it from then on without waking the
stream's task; the hub lets go of it when its client is slow, when it has fallen behind the window,
when the hub stops, or when the server drains, and the stream goes on from where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from paywire.db.engine import Database
from paywire.events import log as event_log
from paywire.events import socket_writes, stream_hub
from paywire.events.sinks import Sink
from paywire.services import Lifecycle

POLL_SECONDS = 1.0  # a stream reading on its own (the hub stopped) looks for new events this often
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        db: Database,
        lifecycle: Lifecycle,
        *,
        after_seq: int,
        livemode: bool,
        wanted: frozenset[str] | None,
        ready: dict[str, str | None],
    ) -> None:
        # As StreamingResponse does: no body, so no Content-Length (the body is chunked).
        self.status_code, self.background = 200, None
        self.init_headers(HEADERS)
        self.db, self.lifecycle = db, lifecycle
        self.after_seq, self.livemode, self.wanted = after_seq, livemode, wanted
        self.ready = f"event: ready\ndata: {json.dumps(ready)}\n\n".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.ready, "more_body": True})
        sink = Sink(send, self.after_seq, self.livemode, self.wanted, lambda: self.lifecycle.draining)
        transport = scope.get("extensions", {}).get(socket_writes.EXTENSION)
        # Plain HTTP/1.1 only: the body is chunked (we frame the chunks), and not encrypted.
        if transport is not None and scope.get("http_version") == "1.1" and scope.get("scheme") == "http":
            sink.use_socket(transport)
        # The client's disconnect ends the stream (ASGI spec < 2.4 servers, uvicorn's, only tell
        # us through `receive`; a write to a gone client is silently dropped).
        watcher = asyncio.create_task(_until_disconnected(receive, sink))
        hub = stream_hub.hub_for(self.db)
        key = hub.subscribe()
        try:
            await self._stream(hub, key, sink)
        finally:
            hub.unsubscribe()
            watcher.cancel()
            await sink.written()  # our writes on the writes thread first, then the end
            sink.close()
        if not sink.gone:
            with contextlib.suppress(Exception):  # (a client leaving just now)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, hub: stream_hub.StreamHub, key: int, sink: Sink) -> None:
        async def write(chunk: bytes) -> None:
            await sink.send({"type": "http.response.body", "body": chunk, "more_body": True})
            sink.last_sent = time.monotonic()

        while not self.lifecycle.draining and not sink.gone:
            snapshot = hub.snapshot(key)
            if hub.covers(sink.seq):  # live: the events the hub has read, this stream's part
                chunk, sink.seq = hub.chunk_for(sink.seq, self.livemode, self.wanted)
                if chunk:
                    await write(chunk)
                    continue
                if hub.running and sink.fd is not None:  # the hub writes to us from now on, until it lets go
                    await hub.serve(sink)
                    await sink.written()
                    continue
            elif hub.starting():  # its first read is on its way: the window will cover us
                await hub.wait(snapshot)
                continue
            else:  # behind the hub's window: read pages on our own until caught up
                try:
                    async with self.db.read() as conn:
                        tip = await event_log.last_seq(conn)  # first: every event up to it is committed
                        rows = await event_log.read_after(conn, sink.seq, livemode=self.livemode, limit=stream_hub.PAGE)
                except Exception:  # database restarting: the client keeps its place, we retry
                    await asyncio.sleep(POLL_SECONDS)
                    continue
                # One write per page, as live: a write per event cost more than the event.
                wanted = self.wanted
                chunk = b"".join(
                    [stream_hub.sse(event_log.render(row)) for row in rows if wanted is None or row.type in wanted]
                )
                sink.seq = rows[-1].seq if rows else sink.seq
                if chunk:
                    await write(chunk)
                if len(rows) >= stream_hub.PAGE:
                    continue
                sink.seq = max(sink.seq, tip)  # all of this mode up to `tip` is sent
                if hub.covers(sink.seq):
                    continue
            if time.monotonic() - sink.last_sent >= stream_hub.HEARTBEAT_SECONDS:
                await write(b": keep-alive\n\n")
            await hub.wait(snapshot)


async def _until_disconnected(receive: Receive, sink: Sink) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    sink.gone = True
    sink.release()

"""One reader of new events per process, shared by every open event stream (`GET /api/events/stream`)
and every in-process EventBus (`paywire.events.local.LocalSource`).

Each stream used to run its own query after every commit: with K streams open, a commit cost K
reads (200 streams: API reads 9.7 → 226 ms median, writes 31 → 3.9 per second). The hub runs ONE
query per wake-up, for events of both modes after the last one it has read, and keeps the rows
it read in a bounded in-memory window. Streams take what they need from the window, each
filtering by its own mode and types. A stream whose position is before the window (it started
far back, or fell behind a slow client) reads pages on its own until it has caught up.

In-process EventBus consumers use the same window: N buses at the same position cost one read
per commit, not N (they take `Entry.event`, made once as well).

The hub runs while streams (or buses) are open: the first `subscribe` starts it, and it stops once the last
one has ended (it starts again, from the newest event, with the next).

A live stream served by `paywire serve` does not even wait for the hub's wake-ups in a task of its
own: it hands itself to the hub (`serve`, a `paywire.events.sinks.Sink`), and at each wake-up the
hub writes to every such stream, one chunk per (position, mode, types) shared by the streams that
have them in common, the socket calls on a thread of their own (`paywire.events.socket_writes`):
~2 µs of the event loop per stream and wake-up, where a woken stream cost ~50 µs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.engine import Database
from paywire.db.signal import Signal
from paywire.events import log as event_log
from paywire.events import socket_writes
from paywire.events.event import Event
from paywire.events.sinks import Sink

log = logging.getLogger("paywire.events")

PAGE = 500  # events per read, the hub's and a catching-up stream's
WINDOW = 5000  # events the hub keeps in memory, newest last
POLL_SECONDS = 1.0  # the hub reads at least this often (the fallback to commit signals)
# SQLite has no cross-process notification: commits by another process (a worker, a second API
# process) are found only by polling. An empty read costs ~0.3 ms of CPU; 40 a second while
# streams or buses are open is cheap, and bounds what they wait for such commits.
SQLITE_POLL_SECONDS = 0.025
# Waking every stream costs ~50 µs of CPU per stream (the task switch, Starlette's send chain
# through each middleware, a socket write; profiled with py-spy). Under a steady writer, one
# wake-up per commit would spend streams x commits x that: with 1,000 streams, 50 ms of the one
# event loop per commit. Wake-ups are instead at least `streams x COALESCE_PER_STREAM` apart
# (each stream then sends the events of several commits in one write), capped at COALESCE_MAX:
# fan-out then takes at most ~50/500 of the loop whatever the number of streams (it was 50/300:
# with a CPU-bound writer that left it 0.64-0.81 of its rate; 50/500, 0.78-0.83). With 1 stream
# that is 0.5 ms (nothing); with 200, 100 ms; with 1,000, 500 ms of added latency at most.
COALESCE_PER_STREAM = 0.0005
COALESCE_MAX = 0.5
# Streams woken per turn of the event loop. A request does one step per turn (parse, each
# database call's completion, the response), and each turn during a fan-out also runs one group:
# a request of ~15 steps arriving mid fan-out waits for ~15 groups' sends. With 40 a group
# (~2 ms each) that is most of a 1,000-stream fan-out; with 4, ~3 ms (read p99 115 -> 48 ms in
# one run). The extra turns cost a few µs each (a select() with nothing to wait for).
WAKE_GROUP = 4
# Attached streams (`serve`) whose writes are prepared per turn of the event loop, and handed to
# the writes thread as one batch: ~2 µs each on the loop (the thread makes the system calls).
WRITE_GROUP = 16
# The groups of one round of writes are spread over this share of the time to the next wake-up,
# not sent in one burst: 1,000 socket writes are ~50 ms of a core (and as much again for the
# clients' side, on a machine that hosts them), and in one burst they took both cores from the
# API for that long (read p99 2.4-2.8x that of no stream; spread, 1.2-1.4x on SQLite).
WRITE_SPREAD = 0.6
HEARTBEAT_SECONDS = 15.0  # a stream with nothing to send gets a comment line this often


class Entry:
    """An event the hub has read: what a stream filters on, and its SSE message (made once)."""

    __slots__ = ("_event", "_sse", "livemode", "row", "seq", "type")

    def __init__(self, row: sa.Row[Any]) -> None:
        self.row = row
        self.seq: int = row.seq
        self.livemode: bool = row.livemode
        self.type: str = row.type
        self._sse: bytes | None = None
        self._event: Event | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = sse(event_log.render(self.row))
        return self._sse

    @property
    def event(self) -> Event:
        """The event for in-process EventBus handlers (frozen, so one object serves every bus)."""
        if self._event is None:
            self._event = Event.from_dict(event_log.render(self.row))
        return self._event


def sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n".encode()


class StreamHub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = 0  # queries run by the hub (for tests and benchmarks)
        self._entries: list[Entry] = []
        self._seqs: list[int] = []  # the entries' seqs, for bisect
        # Every event with seq in (start, position] is in `_entries`; None until the hub has started.
        self.start: int | None = None
        self.position = 0
        self._changed = [asyncio.Event()]  # one per group of streams (see `_wake`)
        self._woken, self._woken_at = 0, 0.0  # the position streams were last woken at, and when
        self._streams = 0
        self._keys = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False  # by `stop`: the streams open then read on their own
        self._sinks: dict[Sink, None] = {}  # streams the hub writes to (an ordered set)
        self._writing = False  # a round of writes to them is under way
        self._write_again = False  # the hub has read again meanwhile: another round follows
        self._chunks: dict[tuple[int, bool, frozenset[str] | None], tuple[bytes, int]] = {}
        self._chunks_at = -1  # the position the cached chunks were made at

    # --- for streams ----------------------------------------------------------------------

    def subscribe(self) -> int:
        """A stream opens (call `unsubscribe` when it ends); a new stream restarts a stopped hub.
        Returns the stream's key for `snapshot`."""
        self._streams += 1
        self._keys += 1
        self._stopped = False
        self._ensure_running()
        return self._keys

    def _ensure_running(self) -> None:
        if not self.running and not self._stopped:
            self.start = None
            self._task = asyncio.create_task(self._run(), name="paywire-stream-hub")

    @property
    def streams(self) -> int:
        """Streams (and buses) open now."""
        return self._streams

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def unsubscribe(self) -> None:
        self._streams -= 1
        if self._streams <= 0 and self._task is not None:
            self._task.cancel()  # nobody is left: the hub stops reading
            self._task = None

    def snapshot(self, key: int = 0) -> asyncio.Event:
        """Take before `after`, then wait on it: set once the hub has read again. `key` (from
        `subscribe`) spreads streams over the groups woken in turn."""
        groups = self._changed
        return groups[key % len(groups)]

    async def stop(self) -> None:
        """Stop (the app is stopping): streams still open read on their own from now on.
        Optional: the hub also stops by itself when its last stream ends."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait(self, snapshot: asyncio.Event) -> None:
        """Until the hub has read again: it does at least every `POLL_SECONDS`, so no timeout of
        our own (a timeout per stream and wake-up costs 20 µs, several times the wake-up)."""
        if not self.running:  # (only if the hub failed, or was stopped)
            self._ensure_running()
            await Signal.wait(snapshot, POLL_SECONDS)
        else:
            await snapshot.wait()

    def starting(self) -> bool:
        """Running, but not read once yet: a stream opening now waits for that first read rather
        than reading on its own (1,000 streams opening at once: one read, not 1,000)."""
        return self.start is None and self.running

    def covers(self, seq: int) -> bool:
        """Does the window hold every event after `seq` the hub has read?"""
        return self.start is not None and seq >= self.start

    def after(self, seq: int) -> list[Entry]:
        """The window's events after `seq` (of both modes), oldest first; check `covers` first."""
        return self._entries[bisect.bisect_right(self._seqs, seq) :]

    def chunk_for(self, seq: int, livemode: bool, wanted: frozenset[str] | None) -> tuple[bytes, int]:
        """One write of the window's events after `seq` of this mode and these types (None: all),
        and the position it brings a stream to; check `covers` first. Made once per position and
        filters: streams that have them in common share it."""
        if self._chunks_at != self.position:
            self._chunks, self._chunks_at = {}, self.position
        key = (seq, livemode, wanted)
        found = self._chunks.get(key)
        if found is None:
            entries = self.after(seq)
            mine = [e.sse for e in entries if e.livemode == livemode and (wanted is None or e.type in wanted)]
            chunk = b"".join(mine)
            found = self._chunks[key] = (chunk, max(entries[-1].seq if entries else seq, self.position))
        return found

    async def serve(self, sink: Sink) -> None:
        """Write to `sink` at each wake-up until it is released: its client is slow (the socket
        took part of a write), it fell behind the window, the hub stopped, the server drains, or
        its client left. The caller then goes on by itself from `sink.seq` once `sink.written()`
        returns."""
        if sink.gone:
            return
        sink.released.clear()
        self._sinks[sink] = None
        try:
            await sink.released.wait()
        finally:
            self._sinks.pop(sink, None)

    # --- the reader -------------------------------------------------------------------------

    async def _run(self) -> None:
        signal = self.db.signal
        poll = POLL_SECONDS if self.db.is_postgres else min(POLL_SECONDS, SQLITE_POLL_SECONDS)
        loop = asyncio.get_running_loop()
        notified = True
        reader = Reader(self.db)  # this run's own: a run being cancelled closes its connection, not the next run's
        try:
            while True:
                snapshot = signal.snapshot()
                woke = loop.time()
                try:
                    full = await self._read(reader)
                except Exception as exc:  # database restarting: streams keep their place, we retry
                    log.debug("event stream hub: read failed (%s); retrying", exc)
                    full = False
                    await asyncio.sleep(POLL_SECONDS)
                # Streams wake for new events, a signal (a drain is one), and once per POLL_SECONDS
                # (to check for a drain); not for each fast SQLite poll that found nothing.
                if notified or self.position > self._woken or woke - self._woken_at >= POLL_SECONDS:
                    self._woken, self._woken_at = self.position, woke
                    self._wake()
                notified = True
                if not full:
                    notified = await signal.wait(snapshot, poll)
                # Coalesce: the commits of the next few ms are read, and sent, together.
                gap = min(COALESCE_MAX, self._streams * COALESCE_PER_STREAM) - (loop.time() - woke)
                if gap > 0.001:
                    await asyncio.sleep(gap)
        finally:
            await reader.close()
            if self._task is None or self._task is asyncio.current_task():
                self.start = None
                self._entries, self._seqs = [], []
                self._wake()
                # Every attached stream goes on by itself, even one whose write was in flight
                # (the round skipped it, and no round follows now).
                for sink in list(self._sinks):
                    sink.release()

    async def _read(self, reader: Reader) -> bool:
        """Read the events after `position` (one query); True if there may be more right now."""
        async with reader.connection() as conn:
            if self.start is None:  # (re)starting: from the newest event
                self.position = await event_log.last_seq(conn)
                self.start = self.position
                self._chunks_at = -1  # (a new window: no chunk of the old one)
                return False
            self.reads += 1
            rows = await event_log.read_after(conn, self.position, livemode=None, limit=PAGE)
        if rows:
            self._entries += [Entry(row) for row in rows]
            self._seqs += [row.seq for row in rows]
            self.position = rows[-1].seq
            if len(self._entries) > WINDOW:
                drop = len(self._entries) - WINDOW
                self.start = self._seqs[drop - 1]
                del self._entries[:drop], self._seqs[:drop]
        return len(rows) >= PAGE

    def _wake(self) -> None:
        """Wake every stream, a group of about WAKE_GROUP at a time, one group per turn of the
        event loop: a request arriving meanwhile waits for one group's sends, not for all
        (1,000 streams at ~50 µs each would hold the loop for 50 ms)."""
        fired = self._changed
        waiting = self._streams - len(self._sinks)  # (attached streams wait for no event)
        self._changed = [asyncio.Event() for _ in range(max(1, waiting // WAKE_GROUP))]
        self._set_in_turn(fired, 0)
        if self._writing:
            self._write_again = True  # (every stream gets this round's end first: none starves)
        elif self._sinks:
            self._start_writes()

    def _set_in_turn(self, fired: list[asyncio.Event], i: int) -> None:
        fired[i].set()  # its streams run in the next turn; the next group in the one after
        if i + 1 < len(fired):
            asyncio.get_running_loop().call_soon(self._set_in_turn, fired, i + 1)

    def _start_writes(self) -> None:
        sinks = list(self._sinks)
        groups = -(-len(sinks) // WRITE_GROUP)
        spread = min(COALESCE_MAX, self._streams * COALESCE_PER_STREAM) * WRITE_SPREAD
        self._writing = True
        self._write_in_turn(sinks, 0, spread / groups)

    def _write_in_turn(self, sinks: list[Sink], i: int, gap: float) -> None:
        """Write to the attached streams, WRITE_GROUP of them at a time, `gap` seconds apart;
        those whose sockets can take it in one batch on the writes thread."""
        now = time.monotonic()
        batch: list[tuple[int, bytes]] = []
        batched: list[Sink] = []
        framed: dict[int, bytes] = {}  # id(chunk): the chunk framed (streams share chunks)
        for sink in sinks[i : i + WRITE_GROUP]:
            if sink not in self._sinks or sink.in_flight is not None or sink.released.is_set():
                continue
            if sink.fd is None or not sink.direct():  # bytes of its own wait in the transport
                sink.release()  # (its task writes at the client's pace, then comes back)
                continue
            body = self._next_write(sink, now)
            if body is None:
                continue
            data = framed.get(id(body))
            if data is None:
                data = framed[id(body)] = socket_writes.frame(body)
            batch.append((sink.fd, data))
            batched.append(sink)
        if batch:
            self._submit(batch, batched)
        loop = asyncio.get_running_loop()
        if i + WRITE_GROUP < len(sinks):
            loop.call_later(gap, self._write_in_turn, sinks, i + WRITE_GROUP, gap)
            return
        self._writing = False
        again, self._write_again = self._write_again, False
        if again and self._sinks:
            loop.call_soon(self._start_writes)

    def _next_write(self, sink: Sink, now: float) -> bytes | None:
        """What to write to `sink` now (and its position moves past it), or None."""
        if sink.stopping() or not self.covers(sink.seq):  # draining; stopped, or fell behind
            sink.release()
            return None
        chunk, sink.seq = self.chunk_for(sink.seq, sink.livemode, sink.wanted)
        if chunk:
            sink.last_sent = now
            return chunk
        if now - sink.last_sent >= HEARTBEAT_SECONDS:
            sink.last_sent = now
            return b": keep-alive\n\n"
        return None

    def _submit(self, batch: list[tuple[int, bytes]], sinks: list[Sink]) -> None:
        future = socket_writes.submit(batch)
        for sink in sinks:
            sink.in_flight = future
        future.add_done_callback(lambda done: _written(sinks, done))


def _written(sinks: list[Sink], done: asyncio.Future[list[bytes | None]]) -> None:
    """A batch is written: a stream whose socket took only part is finished by its transport
    (flow-controlled from there) and goes on by itself; one whose client left ends."""
    outcomes = done.result() if not done.cancelled() and done.exception() is None else None
    for k, sink in enumerate(sinks):
        sink.in_flight = None
        outcome = outcomes[k] if outcomes is not None else socket_writes.GONE
        if outcome is None:
            continue
        transport = sink.transport
        if outcome == socket_writes.GONE or transport is None or transport.is_closing():
            sink.gone = True
        else:
            transport.write(outcome)  # the rest, behind which the stream's own writes queue
        sink.release()


class Reader:
    """The connection the hub's reads run on, for one run of the hub.

    PostgreSQL: one connection kept while the hub runs, outside a transaction (its reads are
    single statements, each one snapshot), so a read is one round trip to the server. A pooled
    read was six: the pool's pre-ping (BEGIN, `;`, ROLLBACK), BEGIN, the SELECT, COMMIT, each a
    wait on a busy server, on the path from another process's commit to the streams.
    SQLite: a pooled read (it has no round trips).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        if not self.db.is_postgres:
            async with self.db.read() as pooled:
                yield pooled
            return
        if self._conn is None:
            fresh = await self.db.engine.connect()
            self._conn = await fresh.execution_options(isolation_level="AUTOCOMMIT")
        conn = self._conn
        try:
            yield conn
            await conn.commit()  # (no round trip in autocommit: ends SQLAlchemy's own transaction)
        except BaseException:  # a lost connection, or cancelled mid-read: the next read opens a new one
            await self.close(invalidate=True)
            raise

    async def close(self, *, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await (conn.invalidate() if invalidate else conn.close())


_hubs: weakref.WeakKeyDictionary[Database, StreamHub] = weakref.WeakKeyDictionary()


def hub_for(db: Database) -> StreamHub:
    """The process's hub for `db` (made on first use)."""
    hub = _hubs.get(db)
    if hub is None:
        hub = _hubs[db] = StreamHub(db)
    return hub

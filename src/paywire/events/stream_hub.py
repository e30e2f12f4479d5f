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

Live streams whose server can take bytes synchronously (`Follower`: uvicorn's h11, see
`paywire.api.event_stream`) are not woken at all: after each read the hub writes to them itself,
in one loop (`_fan_out`), each group of streams at the same position with the same mode and type
filter getting ONE rendered chunk, written to each socket in turn. A stream's task only waits
until the hub lets it go: its client left, the server is draining, the client is too slow to take
more (its socket's buffer is full: it catches up on its own, then follows again) or the hub stops.

The hub runs while streams (or buses) are open: the first `subscribe` starts it, and it stops once the last
one has ended (it starts again, from the newest event, with the next).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import json
import logging
import time
import weakref
from typing import Any, Protocol

import sqlalchemy as sa

from paywire.db.engine import Database
from paywire.events import log as event_log
from paywire.events.event import Event

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
# fan-out then takes at most ~50/300 of the loop whatever the number of streams. With 1 stream
# that is 0.3 ms (nothing); with 200, 60 ms; with 1,000, 300 ms of added latency at most.
# (Since the hub writes to followers itself, a stream costs ~5-10 µs per wake-up, mostly the
# socket write; the spacing is kept: it also bounds the stream clients' work and the syscalls.)
COALESCE_PER_STREAM = 0.0003
COALESCE_MAX = 0.5
WAKE_GROUP = 40  # streams woken per turn of the event loop
# Followers written to per turn of the event loop: a request arriving during a fan-out waits for
# one slice (~50 x 5-10 µs), not for all of them.
FAN_OUT_SLICE = 50
HEARTBEAT_SECONDS = 15.0  # a stream that sent nothing for this long gets a comment line
KEEP_ALIVE = b": keep-alive\n\n"


class Follower(Protocol):
    """A live stream the hub writes to itself (`follow`); made by the API for its server."""

    livemode: bool
    types: frozenset[str] | None  # None: every type

    def gone(self) -> bool:
        """The client has left, or the server is draining: the stream ends."""
        ...

    def write(self, data: bytes) -> bool:
        """Send `data` now, without waiting; False (and nothing sent) if the client cannot take
        more yet (its buffer is full)."""
        ...


class Let(enum.Enum):
    """Why `follow` returned."""

    GONE = "gone"  # the stream ends
    LAGGING = "lagging"  # the client is slow: wait until it has taken what it has, then go on
    BEHIND = "behind"  # the stream's position is before the window (or the hub stopped): read on your own


class _Following:
    __slots__ = ("done", "follower", "last_sent", "seq")

    def __init__(self, follower: Follower, seq: int, done: asyncio.Future[Let]) -> None:
        self.follower = follower
        self.seq = seq  # every event after it is yet to be written; all up to it are
        self.done = done
        self.last_sent = time.monotonic()


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
        self._following: dict[_Following, None] = {}  # the followers, in the order they came
        self._chunks: dict[tuple[int, bool, frozenset[str] | None], bytes] = {}  # rendered since the last read
        # For tests and benchmarks: fan-outs run, chunks rendered, writes made by the hub.
        self.fan_outs = self.renders = self.writes = 0

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
        if (self._task is None or self._task.done()) and not self._stopped:
            self.start = None
            self._task = asyncio.create_task(self._run(), name="paywire-stream-hub")

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
        if self._task is None or self._task.done():  # (only if the hub failed, or was stopped)
            self._ensure_running()
            await wait(snapshot, POLL_SECONDS)
        else:
            await snapshot.wait()

    @property
    def followers(self) -> int:
        """Streams the hub writes to itself now."""
        return len(self._following)

    @property
    def streams(self) -> int:
        """Streams (and buses) subscribed."""
        return self._streams

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def follow(self, follower: Follower, seq: int) -> tuple[Let, int]:
        """Write the events after `seq` to `follower` from now on (it must be `covers(seq)`), until
        the hub lets it go; returns why, and the position it has written through."""
        data, through = self.take(seq, follower.livemode, follower.types)
        if data and not follower.write(data):
            return Let.LAGGING, seq
        following = _Following(follower, through, asyncio.get_running_loop().create_future())
        self._following[following] = None
        try:
            let = await following.done
        finally:
            self._following.pop(following, None)  # (cancelled: the request's task ended)
        return let, following.seq

    def take(self, seq: int, livemode: bool, types: frozenset[str] | None) -> tuple[bytes, int]:
        """The SSE messages of this mode and types after `seq` in the window (check `covers`
        first), as one chunk rendered once for every stream asking the same, and the position
        they run through."""
        key = (seq, livemode, types)
        data = self._chunks.get(key)
        if data is None:
            self.renders += 1
            entries = self.after(seq)
            data = self._chunks[key] = b"".join(
                [e.sse for e in entries if e.livemode == livemode and (types is None or e.type in types)]
            )
        return data, self.position

    def covers(self, seq: int) -> bool:
        """Does the window hold every event after `seq` the hub has read?"""
        return self.start is not None and seq >= self.start

    def after(self, seq: int) -> list[Entry]:
        """The window's events after `seq` (of both modes), oldest first; check `covers` first."""
        return self._entries[bisect.bisect_right(self._seqs, seq) :]

    # --- the reader -------------------------------------------------------------------------

    async def _run(self) -> None:
        signal = self.db.signal
        poll = POLL_SECONDS if self.db.is_postgres else min(POLL_SECONDS, SQLITE_POLL_SECONDS)
        loop = asyncio.get_running_loop()
        notified = True
        me = asyncio.current_task()
        try:
            # Until `stop` or the last `unsubscribe` replaces us: not only on their cancel, which
            # Python 3.11's `wait_for` (in `signal.wait`) can swallow when its wait ends just then.
            while self._task is me:
                snapshot = signal.snapshot()
                woke = loop.time()
                try:
                    full = await self._read()
                except Exception as exc:  # database restarting: streams keep their place, we retry
                    log.debug("event stream hub: read failed (%s); retrying", exc)
                    full = False
                    await asyncio.sleep(POLL_SECONDS)
                # Streams wake for new events, a signal (a drain is one), and once per POLL_SECONDS
                # (to check for a drain); not for each fast SQLite poll that found nothing.
                if notified or self.position > self._woken or woke - self._woken_at >= POLL_SECONDS:
                    self._woken, self._woken_at = self.position, woke
                    self._wake()
                    await self._fan_out()
                notified = True
                if not full:
                    notified = await signal.wait(snapshot, poll)
                # Coalesce: the commits of the next few ms are read, and sent, together.
                gap = min(COALESCE_MAX, self._streams * COALESCE_PER_STREAM) - (loop.time() - woke)
                if gap > 0.001:
                    await asyncio.sleep(gap)
        finally:
            if self._task is None or self._task is me:
                self.start = None
                self._entries, self._seqs, self._chunks = [], [], {}
                self._wake()
                for following in list(self._following):
                    self._let_go(following, Let.BEHIND)

    async def _read(self) -> bool:
        """Read the events after `position` (one query); True if there may be more right now."""
        async with self.db.read() as conn:
            if self.start is None:  # (re)starting: from the newest event
                self.position = await event_log.last_seq(conn)
                self.start = self.position
                return False
            self.reads += 1
            rows = await event_log.read_after(conn, self.position, livemode=None, limit=PAGE)
        if rows:
            self._chunks = {}
            self._entries += [Entry(row) for row in rows]
            self._seqs += [row.seq for row in rows]
            self.position = rows[-1].seq
            if len(self._entries) > WINDOW:
                drop = len(self._entries) - WINDOW
                self.start = self._seqs[drop - 1]
                del self._entries[:drop], self._seqs[:drop]
        return len(rows) >= PAGE

    async def _fan_out(self) -> None:
        """Write what is new to every follower (one chunk per group at one position, mode and
        filter), a keep-alive to those idle for HEARTBEAT_SECONDS, and let go of those whose
        client left or is too slow; FAN_OUT_SLICE of them per turn of the event loop."""
        self.fan_outs += 1
        now = time.monotonic()
        for i, following in enumerate(list(self._following)):
            if i and i % FAN_OUT_SLICE == 0:
                await asyncio.sleep(0)  # the API's requests go first
                now = time.monotonic()
            if following.done.done():
                continue
            follower = following.follower
            try:
                if follower.gone():
                    self._let_go(following, Let.GONE)
                    continue
                if not self.covers(following.seq):  # (the window moved past it during a long read)
                    self._let_go(following, Let.BEHIND)
                    continue
                data, through = b"", following.seq
                if through < self.position:
                    data, through = self.take(through, follower.livemode, follower.types)
                elif now - following.last_sent >= HEARTBEAT_SECONDS:
                    data = KEEP_ALIVE
                if data:
                    if not follower.write(data):  # nothing written: it keeps its position
                        self._let_go(following, Let.LAGGING)
                        continue
                    self.writes += 1
                    following.last_sent = now
                following.seq = through
            except Exception:  # one broken connection must not stop the others' fan-out
                log.debug("event stream hub: a follower failed", exc_info=True)
                self._let_go(following, Let.GONE)

    def _let_go(self, following: _Following, let: Let) -> None:
        self._following.pop(following, None)
        if not following.done.done():
            following.done.set_result(let)

    def _wake(self) -> None:
        """Wake every stream, a group of about WAKE_GROUP at a time, one group per turn of the
        event loop: a request arriving meanwhile waits for one group's sends, not for all
        (1,000 streams at ~50 µs each would hold the loop for 50 ms)."""
        fired = self._changed
        self._changed = [asyncio.Event() for _ in range(max(1, self._streams // WAKE_GROUP))]
        self._set_in_turn(fired, 0)

    def _set_in_turn(self, fired: list[asyncio.Event], i: int) -> None:
        fired[i].set()  # its streams run in the next turn; the next group in the one after
        if i + 1 < len(fired):
            asyncio.get_running_loop().call_soon(self._set_in_turn, fired, i + 1)


_hubs: weakref.WeakKeyDictionary[Database, StreamHub] = weakref.WeakKeyDictionary()


def hub_for(db: Database) -> StreamHub:
    """The process's hub for `db` (made on first use)."""
    hub = _hubs.get(db)
    if hub is None:
        hub = _hubs[db] = StreamHub(db)
    return hub


async def wait(snapshot: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(snapshot.wait(), timeout)

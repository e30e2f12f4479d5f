"""ASGI middleware: request ids, the body size limit, and `Idempotency-Key` on POST.

Idempotency follows Stripe: the first response to a key is stored and returned again for the
same key and request; the same key with another request is a 409, and so is a retry while the
first is still running. The key is marked "committed" inside the request's own write
transaction, so whether the write happened is never in doubt: a request that wrote nothing and
failed (5xx, crash) forgets the key and its retry runs for real; one that wrote and then lost
its response answers 409 `idempotency_key_response_lost` rather than writing twice. The end of
the response is sent only once how the request ended is recorded, so a client that has its
answer and sends the key again gets the answer replayed. A key left "started" by a crashed
process is taken over after `ABANDONED_AFTER` seconds.

Each claim is one row version, `(seq, created)`: marking it committed and recording its end
touch only that version, and marking it committed fails (rolling the write back) if the key
was taken over meanwhile, so a slow first request and its take-over never both write.

The database can fail around the request, too. A failure while authenticating or claiming the
key answers the same 503 (or 507) as a route would, instead of escaping to the server (which
would reset the client's keep-alive connection). If recording the end fails, the response goes
out all the same and this process keeps that end, to record it as soon as the database is back
(in the background, and first thing when the same key comes again), so a retry after a 5xx that
wrote nothing runs for real instead of meeting `idempotency_key_in_use` until the key is
abandoned.

Claims and ends are written by group commit (`_GroupCommit`): those of the requests arriving
while one such transaction runs share the next, each request awaiting its own. A first use is
still committed before its request runs, and an end before its answer's last byte goes out.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire import keys
from paywire.api.errors import internal_error, outage_response
from paywire.db import dialect
from paywire.db.engine import Database, before_commit, outage
from paywire.db.schema import idempotency_keys
from paywire.errors import IdempotencyConflict, InvalidRequest, NotFound, PayloadTooLarge, PaywireError
from paywire.ids import new_id
from paywire.ops import logs
from paywire.secrets_at_rest import Keyring
from paywire.services import Services

ABANDONED_AFTER = 60

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

log = logging.getLogger("paywire.api")


class _TooLarge(Exception):
    pass


class _Claim(NamedTuple):
    """The row version a request claimed: only it may be marked committed or finished."""

    seq: int
    created: int


@dataclass
class _Ended:
    """How a claimed request ended; kept when it could not be recorded, to record it later."""

    claim: _Claim
    status: int
    body: bytes
    at: float
    recording: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer at a time
    recorded: bool = False


class PaywireMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self._unrecorded: dict[tuple[bool, str], _Ended] = {}
        self._recorder: asyncio.Task[None] | None = None
        self._first_uses: _GroupCommit[_FirstUse, int | None] = _GroupCommit(services.db, _insert_claims)
        self._ends: _GroupCommit[_Ended, None] = _GroupCommit(
            services.db, lambda conn, ends: _write_ends(conn, ends, services.keyring)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)  # this request's task: its log lines carry the id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"request-id", request_id.encode()))
            await send(message)

        refused = _refuse_nul(scope)
        if refused is not None:
            await _send_error(send_with_id, refused)
            return

        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send_with_id)
            return
        try:
            body = await self._read_body(scope, receive)
        except _TooLarge:
            limit = self.services.max_body_bytes
            await _send_error(send_with_id, PayloadTooLarge(f"request body is larger than {limit} bytes"))
            return

        # The API speaks only JSON: a body sent as form data (`curl -d`) is read as JSON too.
        # The pages (outside /api/) take HTML forms, with CSRF tokens instead of idempotency keys.
        api = scope["path"].startswith("/api/")
        if body and api:
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"] = [*headers, (b"content-type", b"application/json")]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the client disconnecting
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        key = _header(scope, b"idempotency-key")
        if scope["method"] == "POST" and key is not None and api:
            await self._idempotent(scope, replay, send_with_id, key, body)
        else:
            await self.app(scope, replay, send_with_id)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.services.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, key: str, body: bytes) -> None:
        if not 1 <= len(key) <= 255:
            await _send_error(
                send, InvalidRequest("Idempotency-Key must be 1 to 255 characters", param="Idempotency-Key")
            )
            return
        api_key = _bearer(scope)
        try:
            found = await keys.authenticate_cached(self.services.db, api_key) if api_key else None
            if found is not None:
                digest = hashlib.sha256(
                    b"\n".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body])
                ).hexdigest()
                await self._record_earlier(found.livemode, key)
                claimed = await self._claim(found.livemode, key, digest)
        except Exception as exc:
            await _send_failure(scope, receive, send, exc)
            return
        if found is None:  # let the route answer 401
            await self.app(scope, receive, send)
            return
        if isinstance(claimed, PaywireError):
            await _send_error(send, claimed)
            return
        if not isinstance(claimed, _Claim):
            status, payload = claimed
            await _send_json(send, status, payload, extra=[(b"idempotent-replayed", b"true")])
            return

        status_code = 500
        chunks: list[bytes] = []
        last: Message | None = None

        async def capture(message: Message) -> None:
            nonlocal status_code, last
            if message["type"] == "http.response.start":
                status_code = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Held until the end is recorded: a client that has the answer and sends the
                    # key again then gets it replayed, never `idempotency_key_in_use`.
                    last = message
                    return
            await send(message)

        table = idempotency_keys
        mine = sa.and_(table.c.seq == claimed.seq, table.c.created == claimed.created)

        async def mark_committed(conn: AsyncConnection) -> None:
            # Inside the request's own write transaction: the key is "committed" if and only if
            # the write is, so a crash before `_finish` can never lead to the write running twice.
            marked = await conn.execute(
                table.update().where(mine, table.c.state.in_(("started", "committed"))).values(state="committed")
            )
            if marked.rowcount != 1:  # taken over (abandoned) meanwhile: the take-over writes, not us
                raise IdempotencyConflict(
                    "a later request with this Idempotency-Key took it over; nothing was written",
                    param="Idempotency-Key",
                    code="idempotency_key_in_use",
                )

        token = before_commit.set(mark_committed)
        try:
            await self.app(scope, receive, capture)
        finally:
            before_commit.reset(token)
            ended = _Ended(claimed, status_code, b"".join(chunks), time.monotonic())
            try:
                await self._finish(ended)
            except Exception as exc:  # the answer is made already: never let this reach the server
                if outage(exc) is None:
                    log.exception("could not record the end of an Idempotency-Key request")
                else:  # record it once the database is back
                    log.warning("could not record the end of an Idempotency-Key request (%s); will retry", exc)
                    self._unrecorded[found.livemode, key] = ended
                    self._start_recorder()
            if last is not None:
                await send(last)

    async def _record_earlier(self, livemode: bool, key: str) -> None:
        """A request with this key ended here but its end is not recorded yet: record it now
        (or wait for the recorder doing it), so the claim that follows sees it."""
        ended = self._unrecorded.get((livemode, key))
        if ended is not None:
            await self._record((livemode, key), ended)

    async def _record(self, name: tuple[bool, str], ended: _Ended) -> None:
        async with ended.recording:
            if not ended.recorded:
                await self._finish(ended)
                ended.recorded = True
        if self._unrecorded.get(name) is ended:
            del self._unrecorded[name]

    def _start_recorder(self) -> None:
        if self._recorder is None or self._recorder.done():
            # A context of its own: nothing of the request (its before-commit hook) leaks into it.
            self._recorder = asyncio.get_running_loop().create_task(
                self._record_unrecorded(), context=contextvars.Context()
            )

    async def _record_unrecorded(self) -> None:
        """Retry recording the ends `_finish` failed to write, with back-off, until none is left.

        After `ABANDONED_AFTER` an end is dropped: by then a retry may have taken the key over
        (and a late write would not touch the take-over's row version anyway).
        """
        delay = 0.1
        while self._unrecorded:
            await asyncio.sleep(delay)
            failed = False
            for name, ended in list(self._unrecorded.items()):
                if time.monotonic() - ended.at >= ABANDONED_AFTER:
                    if self._unrecorded.get(name) is ended:
                        del self._unrecorded[name]
                    continue
                try:
                    await self._record(name, ended)
                except Exception:
                    failed = True
                    break
            delay = min(delay * 2, 2.0) if failed else 0.1

    async def _claim(self, livemode: bool, key: str, digest: str) -> _Claim | tuple[int, bytes] | PaywireError:
        """The claim to run the request under, a stored (status, body) to replay, or an error to answer."""
        table = idempotency_keys
        now = int(time.time())
        # A key's first use (the usual case) is committed with the first uses of the requests
        # claiming meanwhile; one met on PostgreSQL while uncommitted is waited for.
        seq = await self._first_uses(_FirstUse(livemode, key, digest, now))
        if seq is not None:
            return _Claim(seq, now)
        async with self.services.db.transaction() as tx:
            row = (
                await tx.conn.execute(
                    sa.select(table).where(table.c.livemode == livemode, table.c.key == key).with_for_update()
                )
            ).first()
            if row is None:  # forgotten (a 5xx) since the insert met it
                return _in_use()
            if row.request_hash != digest:
                return IdempotencyConflict(
                    "this Idempotency-Key was used with a different request", param="Idempotency-Key"
                )
            if row.state == "done":
                stored = self.services.keyring.decrypt(row.response_body or "", _body_aad(int(row.seq)))
                return int(row.response_status), stored.encode()
            if row.state == "committed" and now - row.created >= ABANDONED_AFTER:
                return IdempotencyConflict(
                    "the first request with this Idempotency-Key was carried out, but its response was "
                    "lost; look up the result instead of retrying",
                    param="Idempotency-Key",
                    code="idempotency_key_response_lost",
                )
            if now - row.created < ABANDONED_AFTER:
                return _in_use()
            await tx.conn.execute(table.update().where(table.c.seq == row.seq).values(created=now))
            return _Claim(int(row.seq), now)

    async def _finish(self, ended: _Ended) -> None:
        """Record how the claimed request ended, in one transaction with the ends of the requests
        finishing meanwhile."""
        await self._ends(ended)


class _GroupCommit(Generic[_Item, _Result]):
    """Items handed in while a transaction runs are written together in the next one: one commit
    for all of them, each caller awaiting its own result (or the transaction's error)."""

    def __init__(self, db: Database, write: Callable[[AsyncConnection, list[_Item]], Awaitable[list[_Result]]]) -> None:
        self.db = db
        self.write = write
        self._waiting: list[tuple[_Item, asyncio.Future[_Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: _Item) -> _Result:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[_Result] = loop.create_future()
        self._waiting.append((item, result))
        if self._writer is None or self._writer.done():
            # A context of its own: nothing of the request (its before-commit hook) leaks into it.
            self._writer = loop.create_task(self._write_waiting(), context=contextvars.Context())
        return await result

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self.db.transaction() as tx:
                    results = await self.write(tx.conn, [item for item, _ in batch])
            except Exception as exc:
                for _, result in batch:
                    if not result.done():
                        result.set_exception(exc)
            else:
                for (_, result), value in zip(batch, results, strict=True):
                    if not result.done():
                        result.set_result(value)


class _FirstUse(NamedTuple):
    livemode: bool
    key: str
    request_hash: str
    created: int


async def _insert_claims(conn: AsyncConnection, uses: list[_FirstUse]) -> list[int | None]:
    """Each key's claim as a first use (its row's seq), or None where the key has a row already.

    One statement for the whole batch, its rows in key order so that two processes' batches
    wait on each other's keys in the same order (never a deadlock). A key twice in the batch is
    claimed once."""
    table = idempotency_keys
    first = {(use.livemode, use.key): use for use in reversed(uses)}  # the earliest of a key's uses
    rows = [{**first[name]._asdict(), "state": "started"} for name in sorted(first)]
    inserted = await conn.execute(
        dialect.insert_for(table, dialect.is_postgres(conn))
        .values(rows)
        .on_conflict_do_nothing(index_elements=[table.c.livemode, table.c.key])
        .returning(table.c.seq, table.c.livemode, table.c.key)
    )
    claimed = {(row.livemode, row.key): int(row.seq) for row in inserted}
    return [claimed.pop((use.livemode, use.key), None) for use in uses]


_MINE = sa.and_(
    idempotency_keys.c.seq == sa.bindparam("claim_seq"), idempotency_keys.c.created == sa.bindparam("claim_created")
)
_DONE = idempotency_keys.update().values(
    state="done", response_status=sa.bindparam("status"), response_body=sa.bindparam("body")
)
_RECORD_END = _DONE.where(_MINE)
_RECORD_COMMITTED_END = _DONE.where(_MINE, idempotency_keys.c.state == "committed")
_FORGET_UNWRITTEN = idempotency_keys.delete().where(_MINE, idempotency_keys.c.state == "started")


async def _write_ends(conn: AsyncConnection, ends: list[_Ended], keyring: Keyring) -> list[None]:
    """Each end on its own row version only: a 5xx forgets a key whose request wrote nothing (so
    the client's retry runs for real) and stores the answer of one that did."""
    answered = [_end_row(ended, keyring) for ended in ends if ended.status < 500]
    failed = [_end_row(ended, keyring) for ended in ends if ended.status >= 500]
    if answered:
        await conn.execute(_RECORD_END, answered)
    if failed:
        await conn.execute(_FORGET_UNWRITTEN, failed)
        await conn.execute(_RECORD_COMMITTED_END, failed)
    return [None] * len(ends)


def _end_row(ended: _Ended, keyring: Keyring) -> dict[str, object]:
    return {
        "claim_seq": ended.claim.seq,
        "claim_created": ended.claim.created,
        "status": ended.status,
        # Encrypted at rest like the secrets themselves: a create or rotate-secret answer holds one.
        "body": keyring.encrypt(ended.body.decode("utf-8", "replace"), _body_aad(ended.claim.seq)),
    }


def _refuse_nul(scope: Scope) -> PaywireError | None:
    """NUL in the URL: PostgreSQL cannot compare it (a 500) where SQLite just finds nothing, so
    both answer the same here: in the path a 404 (no id holds it), in the query a 400 naming the
    parameter. (Request bodies are checked by the request models, `paywire.schemas.Request`.)"""
    if "\x00" in scope["path"]:
        return NotFound("no such object: the path contains U+0000 (NUL)", param="id")
    query = scope.get("query_string", b"")
    if b"%00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return InvalidRequest(f"{name.strip(chr(0))}: must not contain U+0000 (NUL)", param=name.strip(chr(0)))
    return None


def _in_use() -> IdempotencyConflict:
    return IdempotencyConflict(
        "a request with this Idempotency-Key is still in progress; retry later",
        param="Idempotency-Key",
        code="idempotency_key_in_use",
    )


def _body_aad(seq: int) -> str:
    return f"idempotency_keys.response_body:{seq}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _send_json(send: Send, status: int, payload: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": payload})


async def _send_failure(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer an error of the middleware's own database work as a route would (503/507, else 500)."""
    response = outage_response(exc)
    if response is None:
        log.exception("unexpected error in the idempotency middleware")
        response = internal_error()
    await response(scope, receive, send)


async def _send_error(send: Send, error: PaywireError) -> None:
    await _send_json(send, error.status, json.dumps(error.body()).encode())

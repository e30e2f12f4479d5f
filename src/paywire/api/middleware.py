"""ASGI middleware: request ids, NUL in URLs, the body size limit, and `Idempotency-Key` on POST.

For a POST with an `Idempotency-Key` the middleware claims the key (`api.idempotency`), runs the
route with the key marked "committed" in the route's own write transaction, and records how the
request ended; the end of the response is sent only once that is recorded, so a client that has
its answer and sends the key again gets the answer replayed.

The database can fail around the request, too. A failure while authenticating or claiming the
key answers the same 503 (or 507) as a route would, instead of escaping to the server (which
would reset the client's keep-alive connection). A failure recording the end does not stop the
response: the store records it later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire import keys
from paywire.api.errors import internal_error, outage_response
from paywire.api.idempotency import Claim, Ended, IdempotencyStore
from paywire.db.engine import before_commit
from paywire.errors import InvalidRequest, NotFound, PayloadTooLarge, PaywireError
from paywire.ids import new_id
from paywire.ops import logs
from paywire.services import Services

log = logging.getLogger("paywire.api")


class _TooLarge(Exception):
    pass


class PaywireMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.idempotency = IdempotencyStore(services.db, services.keyring)

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
                claimed = await self.idempotency.claim(found.livemode, key, digest)
        except Exception as exc:
            await _send_failure(scope, receive, send, exc)
            return
        if found is None:  # let the route answer 401
            await self.app(scope, receive, send)
            return
        if isinstance(claimed, PaywireError):
            await _send_error(send, claimed)
            return
        if not isinstance(claimed, Claim):
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

        async def mark_committed(conn: AsyncConnection) -> None:
            await IdempotencyStore.mark_committed(conn, claimed)

        token = before_commit.set(mark_committed)
        try:
            await self.app(scope, receive, capture)
        finally:
            before_commit.reset(token)
            ended = Ended(claimed, status_code, b"".join(chunks), time.monotonic())
            await self.idempotency.end(found.livemode, key, ended)
            if last is not None:
                await send(last)


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

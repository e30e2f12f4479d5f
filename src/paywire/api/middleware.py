"""ASGI middleware: request ids, the body size limit, and `Idempotency-Key` on POST.

Idempotency follows Stripe: the first response to a key is stored and returned again for the
same key and request; the same key with another request is a 409, and so is a retry while the
first is still running. The key is marked "committed" inside the request's own write
transaction, so whether the write happened is never in doubt: a request that wrote nothing and
failed (5xx, crash) forgets the key and its retry runs for real; one that wrote and then lost
its response answers 409 `idempotency_key_response_lost` rather than writing twice. A key left
"started" by a crashed process is taken over after `ABANDONED_AFTER` seconds.
"""

from __future__ import annotations

import hashlib
import json
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire import keys
from paywire.db.engine import before_commit
from paywire.db.schema import idempotency_keys
from paywire.errors import IdempotencyConflict, InvalidRequest, PayloadTooLarge, PaywireError
from paywire.ids import new_id
from paywire.ops import logs
from paywire.services import Services

ABANDONED_AFTER = 60


class _TooLarge(Exception):
    pass


class PaywireMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

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
        found = None
        if api_key:
            async with self.services.db.read() as conn:
                found = await keys.authenticate(conn, api_key)
        if found is None:  # let the route answer 401
            await self.app(scope, receive, send)
            return
        digest = hashlib.sha256(
            b"\n".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        stored = await self._claim(found.livemode, key, digest)
        if isinstance(stored, PaywireError):
            await _send_error(send, stored)
            return
        if stored is not None:
            status, payload = stored
            await _send_json(send, status, payload, extra=[(b"idempotent-replayed", b"true")])
            return

        status_code = 500
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        where = sa.and_(idempotency_keys.c.livemode == found.livemode, idempotency_keys.c.key == key)

        async def mark_committed(conn: AsyncConnection) -> None:
            # Inside the request's own write transaction: the key is "committed" if and only if
            # the write is, so a crash before `_finish` can never lead to the write running twice.
            await conn.execute(
                idempotency_keys.update().where(where, idempotency_keys.c.state == "started").values(state="committed")
            )

        token = before_commit.set(mark_committed)
        try:
            await self.app(scope, receive, capture)
        finally:
            before_commit.reset(token)
            await self._finish(found.livemode, key, status_code, b"".join(chunks))

    async def _claim(self, livemode: bool, key: str, digest: str) -> tuple[int, bytes] | PaywireError | None:
        """Stored (status, body) to replay, an error to answer, or None: run the request."""
        table = idempotency_keys
        now = int(time.time())
        try:
            async with self.services.db.transaction() as tx:
                row = (
                    await tx.conn.execute(
                        sa.select(table).where(table.c.livemode == livemode, table.c.key == key).with_for_update()
                    )
                ).first()
                if row is None:
                    await tx.conn.execute(
                        table.insert().values(
                            livemode=livemode, key=key, request_hash=digest, state="started", created=now
                        )
                    )
                    return None
                if row.request_hash != digest:
                    return IdempotencyConflict(
                        "this Idempotency-Key was used with a different request", param="Idempotency-Key"
                    )
                if row.state == "done":
                    return int(row.response_status), (row.response_body or "").encode()
                if row.state == "committed" and now - row.created >= ABANDONED_AFTER:
                    return IdempotencyConflict(
                        "the first request with this Idempotency-Key was carried out, but its response was "
                        "lost; look up the result instead of retrying",
                        param="Idempotency-Key",
                        code="idempotency_key_response_lost",
                    )
                if now - row.created < ABANDONED_AFTER:
                    return IdempotencyConflict(
                        "a request with this Idempotency-Key is still in progress; retry later",
                        param="Idempotency-Key",
                        code="idempotency_key_in_use",
                    )
                await tx.conn.execute(table.update().where(table.c.seq == row.seq).values(created=now))
                return None
        except sa.exc.IntegrityError:  # a concurrent first use won the insert
            return IdempotencyConflict(
                "a request with this Idempotency-Key is still in progress; retry later",
                param="Idempotency-Key",
                code="idempotency_key_in_use",
            )

    async def _finish(self, livemode: bool, key: str, status: int, body: bytes) -> None:
        table = idempotency_keys
        where = sa.and_(table.c.livemode == livemode, table.c.key == key)
        async with self.services.db.transaction() as tx:
            if status >= 500:
                # Forget the key only if nothing was written, so the client's retry runs for real.
                await tx.conn.execute(table.delete().where(where, table.c.state == "started"))
                await tx.conn.execute(
                    table.update()
                    .where(where, table.c.state == "committed")
                    .values(state="done", response_status=status, response_body=body.decode("utf-8", "replace"))
                )
            else:
                await tx.conn.execute(
                    table.update()
                    .where(where)
                    .values(state="done", response_status=status, response_body=body.decode("utf-8", "replace"))
                )


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


async def _send_error(send: Send, error: PaywireError) -> None:
    await _send_json(send, error.status, json.dumps(error.body()).encode())

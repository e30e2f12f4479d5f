"""NATS JetStream (nats-py): publish to a subject, delivered only once the stream acks it.

`Nats-Msg-Id` is the event id, so JetStream drops a re-sent duplicate within its duplicate
window; the Standard Webhooks headers travel as NATS headers. Config: `url` (nats://…),
`subject` (default `paywire.{type}`), `stream` (optional: the stream expected to store it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from paywire.destinations.base import (
    Job,
    SendOutcome,
    classify,
    config_value,
    failure,
    format_key,
    render,
    scrub,
    success,
)


class NatsDestination:
    def __init__(self, config: dict[str, Any]) -> None:
        self._url = str(config["url"])
        self._subject = str(config_value(config, "subject", "paywire.{type}"))
        self._stream = config_value(config, "stream")
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    async def _ready(self, timeout: float) -> JetStreamContext:
        if self._js is not None and self._client is not None and self._client.is_connected:
            return self._js
        async with self._lock:
            if self._js is None or self._client is None or not self._client.is_connected:
                await self._drop()
                self._client = await nats.connect(
                    self._url,
                    connect_timeout=timeout,
                    allow_reconnect=False,  # a lost connection is re-made by the next attempt
                    max_reconnect_attempts=0,
                    error_cb=_quiet,
                    disconnected_cb=_nothing,
                    closed_cb=_nothing,
                )
                self._js = self._client.jetstream(timeout=timeout)
            return self._js

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        started = time.monotonic()
        message = render(job)
        try:
            js = self._js
            if js is None or self._client is None or not self._client.is_connected:
                async with asyncio.timeout(timeout):  # connecting (or waiting for another lane to)
                    js = await self._ready(timeout)
            # The publish has its own timeout (a timer per message is enough).
            ack = await js.publish(
                format_key(self._subject, message),
                message.body,
                timeout=timeout,
                stream=self._stream,
                headers={**message.headers, "Nats-Msg-Id": message.id},
            )
        except Exception as exc:
            if not isinstance(exc, (nats.js.errors.Error, nats.errors.NoRespondersError)):
                self._js = None  # the connection may be gone: reconnect next time
            error_type, error = classify(exc, timeout)
            if isinstance(exc, (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError)):
                error_type, error = "no_stream", "no JetStream stream takes this subject"
            return failure(job, started, error_type, scrub(error, self._url))
        duplicate = " (a duplicate: already stored)" if ack.duplicate else ""
        return success(job, started, detail=f"stream {ack.stream} seq {ack.seq}{duplicate}")

    async def _drop(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):  # already broken: nothing to close
                await client.close()

    async def close(self) -> None:
        await self._drop()


async def _quiet(exc: Exception) -> None:
    """nats-py logs connection errors through this callback: each attempt records its own."""


async def _nothing() -> None:
    pass

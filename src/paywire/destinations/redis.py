"""Redis Streams (redis-py's asyncio client): XADD with an approximate MAXLEN.

Fields: `body` (the event JSON) and the Standard Webhooks headers, each a field of its own.
Config: `url` (redis://…), `stream` (default `paywire.events`; `{type}` allowed), `maxlen`
(default 100000, trimmed approximately, `~`; 0: not trimmed).

The XADDs the lanes issue in one event-loop turn go out as one pipeline (`batching`: one write,
one round trip), not a transaction: each is its own command with its own reply, so an error
reply fails only its own delivery, and a lost connection fails those of its pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

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
from paywire.destinations.batching import Coalescer

DEFAULT_MAXLEN = 100_000


class RedisDestination:
    def __init__(self, config: dict[str, Any]) -> None:
        self._url = str(config["url"])
        self._stream = str(config_value(config, "stream", "paywire.events"))
        maxlen = config.get("maxlen")
        self._maxlen = DEFAULT_MAXLEN if maxlen is None else int(maxlen)
        self._client: aioredis.Redis | None = None
        self._timeout = 0.0
        self._batches: dict[float, Coalescer[tuple[str, dict[Any, Any]], Any]] = {}  # by timeout

    def _ready(self, timeout: float) -> aioredis.Redis:
        if self._client is None or timeout != self._timeout:
            # A connection pool of its own (connections made on demand, one per lane at most).
            self._client = aioredis.from_url(
                self._url, socket_connect_timeout=timeout, socket_timeout=timeout, max_connections=64
            )
            self._timeout = timeout
        return self._client

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        started = time.monotonic()
        message = render(job)
        fields: dict[Any, Any] = {"body": message.body, **message.headers}
        batch = self._batches.get(timeout)
        if batch is None:
            batch = self._batches[timeout] = Coalescer(lambda items: self._xadd(items, timeout))
        try:
            entry = await batch.submit((format_key(self._stream, message), fields))
        except Exception as exc:
            if isinstance(exc, aioredis.RedisError) and "Timeout" in type(exc).__name__:
                exc = TimeoutError()
            elif isinstance(exc, aioredis.ConnectionError):
                refused = "refused" in str(exc).lower()
                error_type = "connection_refused" if refused else "connection_error"
                return failure(job, started, error_type, f"{type(exc).__name__}: cannot reach Redis")
            error_type, error = classify(exc, timeout)
            return failure(job, started, error_type, scrub(error, self._url))
        return success(job, started, detail=f"entry {entry.decode() if isinstance(entry, bytes) else entry}")

    async def _xadd(self, items: list[tuple[str, dict[Any, Any]]], timeout: float) -> Sequence[Any]:
        """One pipeline of XADDs; an error reply is its item's result (an exception), not raised."""
        pipe = self._ready(timeout).pipeline(transaction=False)
        for stream, fields in items:
            pipe.xadd(stream, fields, maxlen=self._maxlen or None, approximate=True)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def close(self) -> None:
        for batch in self._batches.values():
            await batch.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

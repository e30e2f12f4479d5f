"""NATS JetStream (nats-py): publish to a subject, delivered only once the stream acks it.

`Nats-Msg-Id` is the event id, so JetStream drops a re-sent duplicate within its duplicate
window; the Standard Webhooks headers travel as NATS headers. Config: `url` (nats://…),
`subject` (default `paywire.{type}`), `stream` (optional: the stream expected to store it).

A publish is what `JetStreamContext.publish` sends (the message with a reply subject, the
stream's ack coming back to it), with its reply handled here at less cost per message: one
subscription per connection takes the acks (`<inbox>.<n>`, n a counter, where nats-py drew
random bytes from the OS for each), and the publishes of one event-loop turn share one timer for
their timeout (nats-py's `wait_for` made a timer and a waiter each). The outcomes are the same:
a delivery succeeds only on its own ack; no stream listening is `no_stream`; no ack within the
timeout is `timeout`, and a timeout or a lost connection makes the next attempt reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

import nats
from nats.aio.client import NO_RESPONDERS_STATUS, Client
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import APIError, NoStreamResponseError

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
        self._inbox = ""  # the connection's reply prefix: acks come to `<inbox><n>`
        self._broken = False  # an attempt failed as if the connection were gone: reconnect
        self._lock = asyncio.Lock()
        self._acks: dict[str, asyncio.Future[Msg]] = {}  # reply token → its publish's ack
        self._tokens = itertools.count()
        self._expiring: dict[float, list[str]] = {}  # this turn's publishes (tokens), by timeout

    def _usable(self) -> bool:
        return self._client is not None and not self._broken and self._client.is_connected

    async def _ready(self, timeout: float) -> tuple[Client, str]:
        async with self._lock:
            if not self._usable():
                await self._drop()
                client = await nats.connect(
                    self._url,
                    connect_timeout=timeout,
                    allow_reconnect=False,  # a lost connection is re-made by the next attempt
                    max_reconnect_attempts=0,
                    error_cb=_quiet,
                    disconnected_cb=_nothing,
                    closed_cb=_nothing,
                )
                inbox = client.new_inbox()
                await client.subscribe(f"{inbox}.*", cb=self._on_ack)
                self._client, self._inbox, self._broken = client, f"{inbox}.", False
            assert self._client is not None
            return self._client, self._inbox

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        started = time.monotonic()
        message = render(job)
        headers = {**message.headers, "Nats-Msg-Id": message.id}
        if self._stream is not None:
            headers[js_api.Header.EXPECTED_STREAM] = self._stream
        token = str(next(self._tokens))
        try:
            client, inbox = self._client, self._inbox
            if client is None or not self._usable():
                async with asyncio.timeout(timeout):  # connecting (or waiting for another lane to)
                    client, inbox = await self._ready(timeout)
            future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
            self._acks[token] = future
            await client.publish(format_key(self._subject, message), message.body, reply=inbox + token, headers=headers)
            self._time_out(token, timeout)
            stream, seq, duplicate = _ack(await future)
        except Exception as exc:
            if not isinstance(exc, (nats.js.errors.Error, nats.errors.NoRespondersError)):
                self._broken = True  # the connection may be gone: reconnect next time
            error_type, error = classify(exc, timeout)
            if isinstance(exc, (nats.errors.NoRespondersError, NoStreamResponseError)):
                error_type, error = "no_stream", "no JetStream stream takes this subject"
            return failure(job, started, error_type, scrub(error, self._url))
        finally:
            self._acks.pop(token, None)
        duplicate_note = " (a duplicate: already stored)" if duplicate else ""
        return success(job, started, detail=f"stream {stream} seq {seq}{duplicate_note}")

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject[len(self._inbox) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _time_out(self, token: str, timeout: float) -> None:
        """Fail the publish of `token` with a timeout unless acked within `timeout` s: one timer
        per turn. (It holds the tokens, not the futures: an acked one is let go at once.)"""
        batch = self._expiring.get(timeout)
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._expiring[timeout] = []
            loop.call_later(timeout, self._expire, batch)
            loop.call_soon(self._expiring.pop, timeout, None)  # the next turn's get a timer of their own
        batch.append(token)

    def _expire(self, tokens: list[str]) -> None:
        for token in tokens:
            future = self._acks.pop(token, None)
            if future is not None and not future.done():
                future.set_exception(nats.errors.TimeoutError())

    async def _drop(self) -> None:
        client, self._client, self._inbox = self._client, None, ""
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):  # already broken: nothing to close
                await client.close()

    async def close(self) -> None:
        await self._drop()


def _ack(msg: Msg) -> tuple[str, int, bool]:
    """(stream, sequence, duplicate) of a JetStream publish ack; its error raised as nats-py does."""
    if msg.headers and msg.headers.get(js_api.Header.STATUS) == NO_RESPONDERS_STATUS:
        raise NoStreamResponseError
    reply = json.loads(msg.data.decode())  # a str: json skips guessing the bytes' encoding
    if "error" in reply:
        raise APIError.from_error(reply["error"])
    return reply["stream"], reply["seq"], bool(reply.get("duplicate"))


async def _quiet(exc: Exception) -> None:
    """nats-py logs connection errors through this callback: each attempt records its own."""


async def _nothing() -> None:
    pass

"""RabbitMQ (aio-pika): publish to an existing exchange, persistent, with publisher confirms.

A message counts as delivered only once the broker confirms it (a nack or a closed channel is a
retry). `message_id` is the event id; the Standard Webhooks headers travel as AMQP headers.
Config: `url` (amqp://…), `exchange` ("" is the default exchange), `routing_key` (default the
event type; `{type}` stands for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

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

# aiormq logs every failed connection attempt; each attempt records its own error instead.
logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


class RabbitMQDestination:
    def __init__(self, config: dict[str, Any]) -> None:
        self._url = str(config["url"])
        self._exchange_name = str(config.get("exchange") or "")
        self._routing_key = str(config_value(config, "routing_key", "{type}"))
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _ready(self, timeout: float) -> AbstractExchange:
        if self._exchange is not None and self._channel is not None and not self._channel.is_closed:
            return self._exchange
        async with self._lock:  # one connection per destination, however many lanes ask
            if self._exchange is None or self._channel is None or self._channel.is_closed:
                await self._drop()
                self._connection = await aio_pika.connect(self._url, timeout=timeout)
                self._channel = await self._connection.channel(publisher_confirms=True)
                if self._exchange_name:
                    # Passive: the exchange must exist (Paywire declares nothing in your broker).
                    self._exchange = await self._channel.get_exchange(self._exchange_name, ensure=True)
                else:
                    self._exchange = self._channel.default_exchange
            return self._exchange

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        started = time.monotonic()
        message = render(job)
        try:
            async with asyncio.timeout(timeout):
                exchange = await self._ready(timeout)
                await exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=dict(message.headers),
                        message_id=message.id,
                        type=message.type,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=format_key(self._routing_key, message),
                )  # returns once confirmed; a nack raises
        except Exception as exc:
            self._exchange = None  # reconnect on the next attempt
            error_type, error = classify(exc, timeout)
            return failure(job, started, error_type, scrub(error, self._url))
        return success(job, started)

    async def _drop(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):  # already broken: nothing to close
                await connection.close()

    async def close(self) -> None:
        await self._drop()

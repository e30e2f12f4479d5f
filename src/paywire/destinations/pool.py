"""The dispatcher's destinations: one transport per destination (and config), made on first use.

Webhook endpoints share one `WebhookDestination` (its connector pools HTTP connections per
host). A broker destination gets its own client, hence its own connection, kept while its config
stands: a changed config (an update) makes a new one and closes the old. All close on `close`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from paywire.destinations.base import Destination, Job
from paywire.destinations.webhook import WebhookDestination

log = logging.getLogger("paywire.webhooks")


def _rabbitmq(config: dict[str, Any]) -> Destination:
    from paywire.destinations.rabbitmq import RabbitMQDestination

    return RabbitMQDestination(config)


def _nats(config: dict[str, Any]) -> Destination:
    from paywire.destinations.nats import NatsDestination

    return NatsDestination(config)


def _redis(config: dict[str, Any]) -> Destination:
    from paywire.destinations.redis import RedisDestination

    return RedisDestination(config)


# type → a factory taking the destination's (decrypted) config. Clients are imported on first use.
FACTORIES: dict[str, Callable[[dict[str, Any]], Destination]] = {
    "rabbitmq": _rabbitmq,
    "nats": _nats,
    "redis": _redis,
}


class Pool:
    def __init__(
        self,
        *,
        concurrency: int,
        allow_private_networks: bool,
        overrides: Mapping[str, Destination] | None = None,
    ) -> None:
        self.webhook: Destination = WebhookDestination(
            concurrency=concurrency, allow_private_networks=allow_private_networks
        )
        self._overrides = dict(overrides or {})  # type → one transport for all (tests)
        self._brokers: dict[str, tuple[str | None, Destination]] = {}  # endpoint id → (config, client)
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, job: Job) -> Destination:
        override = self._overrides.get(job.type)
        if override is not None:
            return override
        if job.type == "webhook":
            return self.webhook
        held = self._brokers.get(job.endpoint_id)
        if held is not None and held[0] == job.config:
            return held[1]
        destination = FACTORIES[job.type](json.loads(job.config or "{}"))
        if held is not None:  # its config changed: close the old client (in the background)
            task = asyncio.get_running_loop().create_task(_close(held[1]))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._brokers[job.endpoint_id] = (job.config, destination)
        return destination

    async def close(self) -> None:
        held = [d for _, d in self._brokers.values()]
        self._brokers.clear()
        await asyncio.gather(self.webhook.close(), *(_close(d) for d in held), *self._closing)
        for destination in self._overrides.values():
            await destination.close()


async def _close(destination: Destination) -> None:
    try:
        await destination.close()
    except Exception as exc:  # a broker gone meanwhile: nothing left to close
        log.debug("closing a destination failed: %s", type(exc).__name__)

"""`PaywireApp`: the database, the HTTP API, the in-process EventBus and the background workers.

`paywire serve` runs one of these; an application can also create one and mount `app.api`.
Background work (the webhook dispatcher, the billing scheduler) plugs in as `Service`s that
start and stop with the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from paywire import secrets_store
from paywire.billing.runtime import Billing
from paywire.clock import SYSTEM_CLOCK, Clock
from paywire.db import migrate
from paywire.db.engine import Database
from paywire.events import stream_hub
from paywire.events.bus import EventBus
from paywire.events.local import LocalSource
from paywire.minting.signed_receipt import SignedReceiptMinter
from paywire.secrets_at_rest import Keyring, keyring_for
from paywire.services import Services
from paywire.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from paywire.webhooks.dispatcher import DeliveryConfig

log = logging.getLogger("paywire")


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class PaywireApp:
    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        bus_name: str | None = None,
        auto_migrate: bool = True,
        run_worker: bool = True,
        delivery_concurrency: int | None = None,
        max_body_bytes: int = 1 << 20,
        settings: Settings | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.settings = settings or (Settings(database_url=database_url) if database_url else Settings())
        self.database_url = database_url or self.settings.database_url
        # The keys of the secrets stored encrypted (endpoint secrets, the minter's key): built
        # here once, from PAYWIRE_ENCRYPTION_KEY or the SQLite key file, and handed down.
        self.keyring = keyring or keyring_for(self.database_url, *self.settings.encryption_keys())
        self.db = Database(self.database_url, pool_timeout=self.settings.database_pool_timeout, keyring=self.keyring)
        self.clock = clock
        self.auto_migrate = auto_migrate
        self.run_worker = run_worker  # False: API only (`serve --no-worker`)
        self.bus = EventBus(LocalSource(self.db), name=bus_name)
        self.background: list[Service] = []
        # The billing engine's outside world: this app's clock, the payment providers (chosen by
        # the settings: providers/choose.py), the minter.
        from paywire.providers.choose import choose

        self.providers = choose(self.settings)
        self.billing = Billing(
            clock=clock,
            provider=self.providers.test,
            live_provider=self.providers.live,
            charge_grace=self.settings.charge_grace_seconds,
            minter=SignedReceiptMinter(self.keyring),
        )
        # What the API and the pages are handed (they never see this object).
        self.services = Services(self.db, self.billing, self.settings, max_body_bytes=max_body_bytes)
        if run_worker:  # the background half: billing scheduler and webhook dispatcher
            from paywire.billing.clock_advance import AdvanceRecovery
            from paywire.billing.scheduler import Scheduler
            from paywire.ops.heartbeat import Heartbeat
            from paywire.ops.retention import Retention
            from paywire.webhooks.dispatcher import Dispatcher

            self.background.append(Heartbeat(self.db))
            self.background.append(Scheduler(self.db, self.billing))
            self.background.append(AdvanceRecovery(self.db, self.billing, self.services.advances))
            config = delivery_config(self.settings, concurrency=delivery_concurrency)
            self.background.append(Dispatcher(self.db, config, keyring=self.keyring))
            self.background.append(Retention(self.db, self.settings))
        self._api: FastAPI | None = None
        self.started = False

    @property
    def draining(self) -> bool:
        return self.services.lifecycle.draining

    def drain(self) -> None:
        self.services.drain()

    @property
    def api(self) -> FastAPI:
        """The FastAPI application (created on first use; its lifespan starts this app)."""
        if self._api is None:
            from paywire.api.app import create_api

            self._api = create_api(self.services, self.running)
        return self._api

    def now(self) -> float:
        return self.clock.now()

    async def start(self) -> None:
        if self.started:
            return
        self.services.lifecycle.draining = False
        if self.auto_migrate:
            await migrate.upgrade(self.db)
            # Secrets a release before encryption stored plain are encrypted now (idempotent).
            await secrets_store.encrypt_plain(self.db, self.keyring)
            await secrets_store.check_keys(self.db, self.keyring)  # a wrong key stops start-up here
        await self.db.start_listening()
        await self.bus.start()
        for service in self.background:
            await service.start()
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        for service in reversed(self.background):
            await service.stop()
        await self.services.advances.stop()
        await stream_hub.hub_for(self.db).stop()
        await self.bus.stop()
        await self.db.dispose()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PaywireApp]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


def delivery_config(settings: Settings, *, concurrency: int | None = None) -> DeliveryConfig:
    """The dispatcher's configuration from the settings (`concurrency`: `worker --concurrency`)."""
    from paywire.webhooks.dispatcher import DeliveryConfig

    config = DeliveryConfig(
        concurrency=concurrency or settings.webhook_concurrency,
        per_endpoint=settings.webhook_per_endpoint,
        timeout=settings.webhook_timeout,
        lease=settings.webhook_lease,
        poll_interval=settings.webhook_poll_interval,
        allow_private_networks=settings.allow_private_networks,
    )
    if settings.webhook_retry_schedule is not None:
        config.schedule = settings.webhook_retry_schedule
    return config

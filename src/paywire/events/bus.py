"""The EventBus: handlers for the event log, in the Paywire process or in any other.

Each handler has its own queue and task, so one that is slow or keeps failing never holds up
the others (nor the billing engine: sync handlers run in a thread). A failing handler is retried
with exponential back-off; after `max_attempts` the event is logged as given up and the handler
moves on, so one poison event cannot stall it for ever. Handlers see events in log order.

A bus with a `name` is durable: the position up to which every handler is done is stored (in
the database, or server-side through the API), and a restarted bus resumes right after it.
Delivery is at least once: events handled after the last stored position are handled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from paywire.events.event import Event

log = logging.getLogger("paywire.eventbus")

Handler = Callable[[Event], Any] | Callable[[Event], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class EventSource(Protocol):
    """Where a bus reads events from. Positions are opaque to the bus (seq, or event id)."""

    async def position_of(self, name: str) -> Any | None: ...

    async def head(self) -> Any: ...

    def events(self, after: Any) -> AsyncIterator[tuple[Any, Event]]: ...

    async def save_position(self, name: str, position: Any) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Subscription:
    handler: Handler
    types: frozenset[str] | None
    queue: asyncio.Queue[tuple[int, Any, Event]]
    done: tuple[int, Any] | None = None  # (bus index, position) of the last event finished
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def wants(self, event: Event) -> bool:
        return self.types is None or event.type in self.types


class EventBus:
    def __init__(
        self,
        source: EventSource,
        *,
        name: str | None = None,
        max_attempts: int = 10,
        retry_base: float = 0.5,
        retry_cap: float = 60.0,
        queue_size: int = 1000,
        save_interval: float = 0.2,
    ) -> None:
        self.source = source
        self.name = name
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.queue_size = queue_size
        self.save_interval = save_interval
        self.given_up = 0  # events a handler failed on `max_attempts` times
        self._subscriptions: list[_Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._saved: Any = None
        self._feeder: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stop_lock = asyncio.Lock()

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        api_key: str | None = None,
        name: str | None = None,
        types: Iterable[str] | None = None,
        reconnect_delay: float = 0.5,
        **options: Any,
    ) -> EventBus:
        """A bus fed by a Paywire server's event stream (`GET /api/events/stream`).

        `url` and `api_key` default to `PAYWIRE_URL` and `PAYWIRE_API_KEY`; `types` narrows the
        stream server-side. Other options are the bus's own (`max_attempts`, `retry_base`…).
        """
        from paywire.events.remote import RemoteSource

        source = RemoteSource(url, api_key=api_key, types=types, reconnect_delay=reconnect_delay)
        return cls(source, name=name, **options)

    # --- registration ---------------------------------------------------------------------

    def subscribe(self, handler: H, *, types: Iterable[str] | None = None) -> H:
        """Call `handler(event)` for every event (or only `types`). Returns the handler."""
        if self._tasks:
            raise RuntimeError("subscribe before the bus starts")
        wanted = frozenset(types) if types is not None else None
        self._subscriptions.append(_Subscription(handler, wanted, asyncio.Queue(self.queue_size)))
        return handler

    def on(self, *types: str) -> Callable[[H], H]:
        """Decorator: `@bus.on("customer.subscription.started")`."""

        def register(handler: H) -> H:
            return self.subscribe(handler, types=types or None)

        return register

    # --- running --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start reading and dispatching in the background (returns at once)."""
        if self._tasks or not self._subscriptions:
            return
        self._stopped.clear()
        start = await self.source.position_of(self.name) if self.name else None
        if start is None:
            start = await self.source.head()
            if self.name:
                await self.source.save_position(self.name, start)
        self._saved = start
        for sub in self._subscriptions:
            sub.done = None
            sub.task = asyncio.create_task(self._work(sub), name=f"eventbus-{sub.handler!r}")
            self._tasks.append(sub.task)
        self._feeder = asyncio.create_task(self._feed(start), name="eventbus-feed")
        self._tasks.append(self._feeder)
        if self.name:
            self._tasks.append(asyncio.create_task(self._save_loop(), name="eventbus-save"))

    async def stop(self) -> None:
        """Stop handling and save the position. Safe to call twice, or while `run_async` ends."""
        async with self._stop_lock:
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.name:
                try:
                    await self._save_now()
                except Exception:  # the store is down: the next run replays from the last saved position
                    log.warning("could not save the position of %r on stop", self.name, exc_info=True)
            self._stopped.set()

    async def run_async(self) -> None:
        """Run until `stop()` is called (or the task is cancelled)."""
        await self.start()
        try:
            stopped = asyncio.ensure_future(self._stopped.wait())
            waiting: set[asyncio.Future[Any]] = {stopped}
            if self._feeder is not None:
                waiting.add(self._feeder)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            feeder = self._feeder
            if feeder is not None and feeder.done() and not feeder.cancelled() and feeder.exception():
                raise feeder.exception()  # type: ignore[misc]  # e.g. the server refused the key
        finally:
            await self.stop()  # waits for a stop() already under way, so the position is saved first
            await self.source.close()

    def run(self) -> None:
        """Run in the foreground until Ctrl-C or SIGTERM."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
            await self.run_async()

        asyncio.run(main())

    # --- internals ------------------------------------------------------------------------

    async def _feed(self, start: Any) -> None:
        index = 0
        async for position, event in self.source.events(start):
            index += 1
            for sub in self._subscriptions:
                await sub.queue.put((index, position, event))

    async def _work(self, sub: _Subscription) -> None:
        while True:
            index, position, event = await sub.queue.get()
            if sub.wants(event):
                await self._call(sub.handler, event)
            sub.done = (index, position)

    async def _call(self, handler: Handler, event: Event) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                if inspect.iscoroutinefunction(handler):
                    await handler(event)
                else:
                    result = await asyncio.to_thread(handler, event)
                    if inspect.isawaitable(result):
                        await result
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == self.max_attempts:
                    self.given_up += 1
                    log.exception(
                        "handler %r gave up on %s (%s) after %d attempts",
                        handler,
                        event.id,
                        event.type,
                        attempt,
                    )
                    return
                delay = min(self.retry_cap, self.retry_base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                log.warning(
                    "handler %r failed on %s (attempt %d), retrying in %.1fs",
                    handler,
                    event.id,
                    attempt,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)

    def _safe_position(self) -> Any:
        """The position every handler has finished (None if one has not finished anything new)."""
        if not self._subscriptions:
            return None
        dones = [sub.done for sub in self._subscriptions]
        if any(done is None for done in dones):
            return None
        return min(d for d in dones if d is not None)[1]

    async def _save_now(self) -> None:
        position = self._safe_position()
        if position is None or position == self._saved or not self.name:
            return
        await self.source.save_position(self.name, position)
        self._saved = position

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            try:
                await self._save_now()
            except Exception:  # the store is down: keep handling, save again later
                log.warning("could not save the position of %r; will retry", self.name, exc_info=True)

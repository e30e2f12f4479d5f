"""The EventBus: in-process (`app.bus`) and remote (`EventBus.connect`), durable by name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from paywire import Event, EventBus
from paywire.app import PaywireApp
from paywire.events import log as event_log
from paywire.events.local import LocalSource
from paywire.events.log import NewEvent
from paywire.sdk.errors import AuthenticationError
from tests.conftest import Server, start_server, stop_server


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_in_process_bus_calls_handlers_after_commit_in_order(database_url: str) -> None:
    app = PaywireApp(database_url)
    sync_seen: list[str] = []
    async_seen: list[str] = []
    started: list[str] = []

    app.bus.subscribe(lambda event: sync_seen.append(event.object_id))

    @app.bus.on("customer.subscription.started")
    async def on_started(event: Event) -> None:
        started.append(event.object_id)

    async def all_events(event: Event) -> None:
        async_seen.append(event.object_id)

    app.bus.subscribe(all_events)
    async with app.running():
        with pytest.raises(RuntimeError):
            async with app.db.transaction() as tx:
                await event_log.append(
                    tx, [NewEvent("invoice.paid", {"id": "in_rolled_back"})], livemode=False, now=time.time()
                )
                raise RuntimeError("roll back")
        for i in range(5):
            async with app.db.transaction() as tx:
                kind = "customer.subscription.started" if i % 2 else "invoice.paid"
                await event_log.append(tx, [NewEvent(kind, {"id": f"obj_{i}"})], livemode=False, now=time.time())
        await _until(lambda: len(sync_seen) == 5 and len(async_seen) == 5 and len(started) == 2)
    expected = [f"obj_{i}" for i in range(5)]
    assert sync_seen == expected and async_seen == expected
    assert started == ["obj_1", "obj_3"]


async def test_a_failing_handler_is_retried_and_does_not_block_others(database_url: str) -> None:
    app = PaywireApp(database_url)
    app.bus.retry_base = 0.01
    attempts: dict[str, int] = {}
    healthy: list[str] = []

    def flaky(event: Event) -> None:
        attempts[event.object_id] = attempts.get(event.object_id, 0) + 1
        if attempts[event.object_id] < 3:
            raise ValueError("not yet")

    app.bus.subscribe(flaky)
    app.bus.subscribe(lambda event: healthy.append(event.object_id))
    async with app.running():
        async with app.db.transaction() as tx:
            await event_log.append(
                tx,
                [NewEvent("invoice.paid", {"id": "in_1"}), NewEvent("invoice.paid", {"id": "in_2"})],
                livemode=False,
                now=time.time(),
            )
        await _until(lambda: healthy == ["in_1", "in_2"])
        await _until(lambda: attempts == {"in_1": 3, "in_2": 3})


async def test_a_handler_that_never_succeeds_gives_up_and_moves_on(database_url: str) -> None:
    app = PaywireApp(database_url)
    app.bus.retry_base, app.bus.max_attempts = 0.001, 3
    seen: list[str] = []

    def poison(event: Event) -> None:
        seen.append(event.object_id)
        if event.object_id == "in_poison":
            raise ValueError("always")

    app.bus.subscribe(poison)
    async with app.running():
        async with app.db.transaction() as tx:
            await event_log.append(
                tx,
                [NewEvent("invoice.paid", {"id": "in_poison"}), NewEvent("invoice.paid", {"id": "in_ok"})],
                livemode=False,
                now=time.time(),
            )
        await _until(lambda: "in_ok" in seen)
    assert seen == ["in_poison"] * 3 + ["in_ok"] and app.bus.given_up == 1


async def _run(bus: EventBus) -> asyncio.Task[None]:
    task = asyncio.create_task(bus.run_async())
    await asyncio.sleep(0)
    return task


async def test_durable_remote_consumer_gets_every_missed_event_in_order_after_restart(
    server: Server, api: httpx.AsyncClient
) -> None:
    received: list[str] = []

    def make_bus() -> EventBus:
        bus = EventBus.connect(server.url, api_key=server.test_key, name="billing-worker", save_interval=0.05)
        bus.subscribe(lambda event: received.append(event.object_id))
        return bus

    await api.post("/api/customers", json={"name": "before the consumer existed"})
    bus = make_bus()
    task = await _run(bus)
    await _until(lambda: bus._feeder is not None)
    first = [(await api.post("/api/customers", json={"name": f"a{i}"})).json()["id"] for i in range(3)]
    await _until(lambda: received == first)
    await bus.stop()
    await task

    # While it is down: events it must not miss.
    missed = [(await api.post("/api/products", json={"name": f"p{i}"})).json()["id"] for i in range(4)]
    position = (await api.get("/api/event-consumers/billing-worker")).json()
    assert position["name"] == "billing-worker" and position["last_event_id"]

    bus = make_bus()
    task = await _run(bus)
    await _until(lambda: len(received) == 7)
    after = (await api.post("/api/customers", json={"name": "after restart"})).json()["id"]
    await _until(lambda: len(received) == 8)
    await bus.stop()
    await task
    assert received == first + missed + [after]


async def test_durable_consumer_survives_a_server_restart(database_url: str) -> None:
    """The server goes away and comes back on the same port: the bus reconnects and misses nothing."""
    app = PaywireApp(database_url)
    uv, server_task, url = await start_server(app)
    from tests.conftest import new_key

    key = await new_key(app)
    received: list[str] = []
    bus = EventBus.connect(url, api_key=key, name="resilient", save_interval=0.05, reconnect_delay=0.05)
    bus.subscribe(lambda event: received.append(event.object_id))
    bus_task = await _run(bus)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        await _until(lambda: bus._feeder is not None)
        a = (await api.post("/api/customers", json={})).json()["id"]
        await _until(lambda: received == [a])
    await stop_server(uv, server_task)

    # Restart on the same port with the same database.
    app2 = PaywireApp(database_url)
    import uvicorn

    port = int(url.rsplit(":", 1)[1])
    uv2 = uvicorn.Server(uvicorn.Config(app2.api, host="127.0.0.1", port=port, log_level="warning"))
    server_task2 = asyncio.create_task(uv2.serve())
    await _until(lambda: uv2.started)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        b = (await api.post("/api/customers", json={})).json()["id"]
        await _until(lambda: received == [a, b], timeout=15)
    await bus.stop()
    await bus_task
    await stop_server(uv2, server_task2)


async def test_without_a_name_a_remote_bus_starts_from_now(server: Server, api: httpx.AsyncClient) -> None:
    await api.post("/api/customers", json={"name": "old"})
    received: list[str] = []
    bus = EventBus.connect(server.url, api_key=server.test_key)
    bus.subscribe(lambda event: received.append(event.type))
    task = await _run(bus)
    await _until(lambda: bus._feeder is not None)
    await asyncio.sleep(0.2)
    await api.post("/api/products", json={"name": "new"})
    await _until(lambda: received == ["product.created"])
    await bus.stop()
    await task


async def test_a_wrong_key_fails_run_with_a_clear_error(server: Server) -> None:
    bus = EventBus.connect(server.url, api_key="sk_test_wrong", name="x")
    bus.subscribe(lambda event: None)
    with pytest.raises(AuthenticationError, match="401"):
        await asyncio.wait_for(bus.run_async(), 10)


async def test_durable_in_process_bus_resumes_after_restart(database_url: str) -> None:
    received: list[str] = []

    def make_app() -> PaywireApp:
        app = PaywireApp(database_url, bus_name="app")
        app.bus.save_interval = 0.05
        app.bus.subscribe(lambda event: received.append(event.object_id))
        return app

    async def emit(app: PaywireApp, object_id: str) -> None:
        async with app.db.transaction() as tx:
            await event_log.append(tx, [NewEvent("invoice.paid", {"id": object_id})], livemode=False, now=time.time())

    app = make_app()
    async with app.running():
        await emit(app, "in_1")
        await _until(lambda: received == ["in_1"])
    # Down: another process (here, a plain writer) commits events.
    writer = PaywireApp(database_url)
    async with writer.running():
        await emit(writer, "in_2")
        await emit(writer, "in_3")
    app = make_app()
    async with app.running():
        await _until(lambda: received == ["in_1", "in_2", "in_3"])


async def test_durable_consumer_registered_on_an_empty_log_misses_nothing(
    server: Server, api: httpx.AsyncClient
) -> None:
    received: list[str] = []

    async def run_once() -> None:
        bus = EventBus.connect(server.url, api_key=server.test_key, name="early-bird", save_interval=0.05)
        bus.subscribe(lambda event: received.append(event.object_id))
        task = await _run(bus)
        await _until(lambda: bus._feeder is not None)
        await bus.stop()
        await task

    await run_once()  # registers at "before the first event", handles nothing
    created = [(await api.post("/api/customers", json={})).json()["id"] for _ in range(2)]
    bus = EventBus.connect(server.url, api_key=server.test_key, name="early-bird")
    bus.subscribe(lambda event: received.append(event.object_id))
    task = await _run(bus)
    await _until(lambda: received == created)
    await bus.stop()
    await task


async def test_in_process_buses_at_one_position_share_one_read_per_commit(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N buses in one process cost one events read per commit, not N (the shared stream hub)."""
    from tests.integration.test_stream_hub import EventReads, no_hub_polls

    no_hub_polls(monkeypatch)  # count the reads commits cause, not polls
    buses, commits = 8, 10
    app = PaywireApp(database_url)
    seen: list[list[str]] = [[] for _ in range(buses)]
    async with app.running():
        others = [EventBus(LocalSource(app.db)) for _ in range(buses)]
        for bus, got in zip(others, seen, strict=True):
            bus.subscribe(lambda event, got=got: got.append(event.object_id))
            await bus.start()
        try:
            with EventReads(app.db) as reads:
                for i in range(commits):
                    async with app.db.transaction() as tx:
                        await event_log.append(
                            tx, [NewEvent("invoice.paid", {"id": f"in_{i}"})], livemode=False, now=time.time()
                        )
                        tx.after_commit.append(app.db.signal.notify)
                    await asyncio.sleep(0.02)  # one commit per wake-up: the worst case for sharing
                await _until(lambda: all(len(got) == commits for got in seen))
        finally:
            for bus in others:
                await bus.stop()
    assert all(got == [f"in_{i}" for i in range(commits)] for got in seen)  # every event, in order
    # Before: one read per bus and commit (8 x 10 = 80). Now the hub's, one per wake-up (twice per
    # commit on PostgreSQL: the in-process signal and the LISTEN/NOTIFY echo), plus a few.
    wakes_per_commit = 2 if app.db.is_postgres else 1
    assert reads.count <= wakes_per_commit * commits + 5, reads.count

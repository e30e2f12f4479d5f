"""Event destinations end to end, against the real brokers on this machine (RabbitMQ 5672,
NATS JetStream 4222, Redis 6379): the API (masked config, the webhook view), a real server and
dispatcher, messages consumed from each broker and verified with `paywire.webhooks.verify`, and
a broker that is down isolated like a dead HTTP endpoint. Each test makes its own exchange,
queue, stream or key (unique names) and removes it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import nats
import pytest
import redis.asyncio as aioredis
from nats.js.api import StreamConfig

from paywire.app import PaywireApp
from paywire.webhooks import verify
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.integration.delivery_receiver import Receiver, until

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"
REDIS = "redis://127.0.0.1:6379/0"

FAST = DeliveryConfig(
    timeout=1.0,
    schedule=(0.2, 0.2),
    jitter=0.0,
    lease=5.0,
    poll_interval=0.2,
    failures_before_backoff=3,
    max_backoff=1.0,
    allow_private_networks=False,
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Env:
    def __init__(self, app: PaywireApp, api: httpx.AsyncClient, receiver: Receiver) -> None:
        self.app, self.api, self.receiver = app, api, receiver

    async def create(self, **body: Any) -> dict[str, Any]:
        response = await self.api.post("/api/event-destinations", json={"enabled_events": ["*"], **body})
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    async def customer(self) -> str:
        await self.api.post("/api/customers", json={"email": "a@example.com"})
        event_id: str = (await self.api.get("/api/events", params={"size": 1})).json()["list"][0]["id"]
        return event_id

    async def wait_attempts(self, destination_id: str, n: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while len(found := await self.attempts(destination_id)) < n:
            assert time.monotonic() < deadline, f"only {len(found)} of {n} attempts"
            await asyncio.sleep(0.05)
        return found

    async def attempts(self, destination_id: str) -> list[dict[str, Any]]:
        response = await self.api.get("/api/webhook-attempts", params={"webhook_endpoint_id": destination_id})
        found: list[dict[str, Any]] = response.json()["list"]
        return found


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[Env]:
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, FAST))
    receiver = await Receiver().start()
    uv, task, url = await start_server(app)
    try:
        key = await new_key(app)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
            yield Env(app, api, receiver)
    finally:
        await stop_server(uv, task)
        await receiver.stop()


def check_message(body: bytes, headers: dict[str, Any], secret: str, event_id: str) -> None:
    event = verify(body, {k: str(v) for k, v in headers.items()}, secret)
    assert event.id == event_id and headers["webhook-id"] == event_id
    assert json.loads(body)["type"] == "customer.created"


async def test_api_masks_credentials_and_keeps_the_webhook_view(env: Env) -> None:
    created = await env.create(type="rabbitmq", config={"url": "amqp://bob:s3cret@127.0.0.1:5672/", "exchange": "x"})
    assert created["id"].startswith("ed_") and created["object"] == "event_destination"
    assert created["secret"].startswith("whsec_") and created["ordering"] == "none"
    assert created["config"] == {"url": "amqp://bob:****@127.0.0.1:5672/", "exchange": "x"}
    fetched = (await env.api.get(f"/api/event-destinations/{created['id']}")).json()
    assert "s3cret" not in json.dumps(fetched) and fetched["config"] == created["config"]
    # The webhook view does not show it, and answers 404 for its id.
    assert (await env.api.get(f"/api/webhook-endpoints/{created['id']}")).status_code == 404
    assert (await env.api.delete(f"/api/webhook-endpoints/{created['id']}")).status_code == 404
    hook = await env.create(type="webhook", config={"url": env.receiver.at("/ok")}, ordering="per_object")
    listed = (await env.api.get("/api/webhook-endpoints")).json()["list"]
    assert [e["id"] for e in listed] == [hook["id"]] and hook["id"].startswith("we_")
    assert "ordering" not in listed[0] and listed[0]["url"] == env.receiver.at("/ok")
    both = (await env.api.get("/api/event-destinations")).json()
    assert both["count"] == 2
    # Updating a key keeps the others; the password stays stored, masked when shown.
    updated = await env.api.put(
        f"/api/event-destinations/{created['id']}", json={"config": {"routing_key": "a.{type}"}}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["config"] == {**created["config"], "routing_key": "a.{type}"}
    # Bad input: a 400 naming the field.
    for body, param in [
        ({"type": "nats", "config": {"url": "http://x"}}, "config.url"),
        ({"type": "redis", "config": {"url": REDIS, "maxlen": -1}}, "config.maxlen"),
        ({"type": "rabbitmq", "config": {"url": AMQP}}, "config.exchange"),
        ({"type": "nats", "config": {"url": NATS, "bogus": "1"}}, "config.bogus"),
    ]:
        response = await env.api.post("/api/event-destinations", json={"enabled_events": ["*"], **body})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    bad = await env.api.post("/api/event-destinations", json={"type": "kafka", "enabled_events": ["*"], "config": {}})
    assert bad.status_code in (400, 422)
    assert (await env.api.delete(f"/api/event-destinations/{created['id']}")).json()["deleted"] is True


async def test_rabbitmq_persistent_confirmed_with_message_id_and_headers(env: Env) -> None:
    suffix = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect(AMQP)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"paywire-test-{suffix}", aio_pika.ExchangeType.TOPIC, auto_delete=False)
    queue = await channel.declare_queue(f"paywire-test-{suffix}", durable=True)
    await queue.bind(exchange, routing_key="events.customer.*")
    try:
        created = await env.create(
            type="rabbitmq", config={"url": AMQP, "exchange": exchange.name, "routing_key": "events.{type}"}
        )
        event_id = await env.customer()
        message = None
        deadline = time.monotonic() + 10
        while message is None:
            assert time.monotonic() < deadline, "no message in the queue"
            message = await queue.get(fail=False, timeout=2)
            if message is None:
                await asyncio.sleep(0.1)
        await message.ack()
        assert message.message_id == event_id and message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == "events.customer.created"
        check_message(message.body, dict(message.headers), created["secret"], event_id)
        [attempt] = await env.wait_attempts(created["id"], 1)
        assert attempt["status"] == "succeeded" and attempt["error"] is None
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()


async def test_rabbitmq_missing_exchange_is_a_retry(env: Env) -> None:
    created = await env.create(type="rabbitmq", config={"url": AMQP, "exchange": f"absent-{uuid.uuid4().hex}"})
    await env.customer()
    found: list[dict[str, Any]] = []

    async def attempted() -> None:
        nonlocal found
        while not (found := await env.attempts(created["id"])):
            await asyncio.sleep(0.1)

    await asyncio.wait_for(attempted(), 10)
    assert found[0]["status"] == "failed" and found[0]["next_retry"] is not None
    assert "guest" not in (found[0]["error"] or "")


async def test_nats_jetstream_acked_and_deduplicated_by_msg_id(env: Env) -> None:
    suffix = uuid.uuid4().hex[:8]
    client = await nats.connect(NATS)
    js = client.jetstream()
    stream = f"PAYWIRE_TEST_{suffix}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"ptest{suffix}.>"]))
    try:
        created = await env.create(
            type="nats", config={"url": NATS, "subject": f"ptest{suffix}.{{type}}", "stream": stream}
        )
        event_id = await env.customer()
        subscription = await js.pull_subscribe(f"ptest{suffix}.>", durable=f"c{suffix}", stream=stream)
        [msg] = await subscription.fetch(1, timeout=10)
        await msg.ack()
        assert msg.subject == f"ptest{suffix}.customer.created"
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event_id
        check_message(
            msg.data, {k: v for k, v in msg.headers.items() if k.startswith("webhook-")}, created["secret"], event_id
        )
        # A resend publishes again with the same Nats-Msg-Id: JetStream keeps one copy.
        resent = await env.api.post(f"/api/events/{event_id}/resend", json={"webhook_endpoint_id": created["id"]})
        assert resent.status_code == 200, resent.text
        deadline = time.monotonic() + 10
        while len(await env.attempts(created["id"])) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        info = await js.stream_info(stream)
        assert info.state.messages == 1
        assert "duplicate" in ((await env.attempts(created["id"]))[0]["response_body"] or "")
    finally:
        await js.delete_stream(stream)
        await client.close()


async def test_nats_without_a_stream_is_a_retry(env: Env) -> None:
    created = await env.create(type="nats", config={"url": NATS, "subject": f"nostream{uuid.uuid4().hex}.x"})
    await env.customer()
    deadline = time.monotonic() + 10
    while not (found := await env.attempts(created["id"])):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert found[0]["status"] == "failed" and found[0]["error_type"] == "no_stream"


async def test_redis_stream_xadd_with_approximate_maxlen(env: Env) -> None:
    stream = f"paywire-test-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(REDIS)
    try:
        created = await env.create(type="redis", config={"url": REDIS, "stream": stream, "maxlen": 1000})
        event_ids = [await env.customer() for _ in range(3)]
        deadline = time.monotonic() + 10
        while await client.xlen(stream) < 3:
            assert time.monotonic() < deadline, "entries missing"
            await asyncio.sleep(0.1)
        entries: Any = await client.xrange(stream)  # redis-py types every reply loosely
        got = []
        for _, fields in entries:
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
            body = decoded.pop("body").encode()
            check_message(body, decoded, created["secret"], decoded["webhook-id"])
            got.append(decoded["webhook-id"])
        assert sorted(got) == sorted(event_ids)  # unordered: lanes publish concurrently
    finally:
        await client.delete(stream)
        await client.aclose()


async def test_a_broker_that_is_down_is_isolated_like_a_dead_endpoint(env: Env) -> None:
    dead = await env.create(
        type="rabbitmq", config={"url": f"amqp://guest:guest@127.0.0.1:{closed_port()}/", "exchange": ""}
    )
    dead_nats = await env.create(type="nats", config={"url": f"nats://127.0.0.1:{closed_port()}"})
    dead_redis = await env.create(type="redis", config={"url": f"redis://127.0.0.1:{closed_port()}/0"})
    hook = await env.create(type="webhook", config={"url": env.receiver.at("/ok")})
    env.receiver.secrets["/ok"] = [hook["secret"]]
    for _ in range(10):
        await env.customer()
    await until(lambda: len(env.receiver.on("/ok")) == 10, timeout=10)
    assert all(all(r.verified.values()) for r in env.receiver.on("/ok"))
    for destination in (dead, dead_nats, dead_redis):
        attempts = await env.wait_attempts(destination["id"], 1)
        assert all(a["status"] == "failed" for a in attempts)
        assert {a["error_type"] for a in attempts} <= {"connection_refused", "connection_error", "timeout"}, attempts
        assert all("guest" not in (a["error"] or "") for a in attempts)

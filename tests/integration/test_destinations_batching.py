"""Broker destinations sending many deliveries at once, against the real brokers (NATS JetStream
4222, Redis 6379): the sends of one event-loop turn go out together (Redis: one pipeline), yet
each delivery gets its own outcome, from its own reply."""

from __future__ import annotations

import time
import uuid
from typing import Any

import nats
import redis.asyncio as aioredis
from nats.js.api import StreamConfig

from paywire.destinations.base import Job, send_batch
from paywire.destinations.nats import NatsDestination
from paywire.destinations.redis import RedisDestination

NATS = "nats://127.0.0.1:4222"
REDIS = "redis://127.0.0.1:6379/0"
SECRET = "whsec_" + "A" * 43


def job(n: int, event_type: str = "customer.created") -> Job:
    return Job(
        seq=n,
        event_id=f"evt_batch{uuid.uuid4().hex[:12]}",
        endpoint_id="we_batch",
        livemode=False,
        url="",
        secrets=(SECRET,),
        body=b'{"id":"evt_x","type":"%s"}' % event_type.encode(),
        attempts=0,
        lease_until=time.time() + 60,
        type="x",
        event_type=event_type,
    )


async def test_redis_one_pipeline_per_turn_and_an_error_reply_fails_only_its_delivery() -> None:
    prefix = f"paywire-test-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(REDIS)
    await client.set(f"{prefix}.bad.type", "not a stream")  # XADD to it: a WRONGTYPE error reply
    destination = RedisDestination({"url": REDIS, "stream": prefix + ".{type}"})
    batches: list[int] = []
    xadd = destination._xadd

    async def counted(items: list[Any], timeout: float) -> Any:
        batches.append(len(items))
        return await xadd(items, timeout)

    destination._xadd = counted  # type: ignore[method-assign]  # counts the pipelines, sends as before
    try:
        jobs = [job(i) for i in range(4)] + [job(4, "bad.type")] + [job(i) for i in range(5, 9)]
        outcomes = await send_batch(destination, jobs, timeout=2.0)
        assert batches == [9]  # one event-loop turn: one pipeline
        assert [o.ok for o in outcomes] == [True] * 4 + [False] + [True] * 4
        bad = outcomes[4]
        assert bad.error_type == "broker_error" and "WRONGTYPE" in (bad.error or "")
        assert all((o.body or "").startswith("entry ") for o in outcomes if o.ok)
        entries: Any = await client.xrange(f"{prefix}.customer.created")
        ids = [fields[b"webhook-id"].decode() for _, fields in entries]
        assert ids == [j.event_id for j in jobs if j.event_type != "bad.type"]  # in order, each once
    finally:
        await destination.close()
        await client.delete(f"{prefix}.bad.type", f"{prefix}.customer.created")
        await client.aclose()


async def test_redis_unreachable_fails_every_delivery_of_the_batch() -> None:
    destination = RedisDestination({"url": "redis://:hunter2@127.0.0.1:1/0", "stream": "x"})
    try:
        outcomes = await send_batch(destination, [job(i) for i in range(3)], timeout=1.0)
        # One failed connect, every delivery of its pipeline failed with it (as a single XADD classifies it).
        assert len({o.error_type for o in outcomes}) == 1
        assert outcomes[0].error_type in ("connection_refused", "connection_error")
        assert all("hunter2" not in (o.error or "") for o in outcomes)
    finally:
        await destination.close()


async def test_nats_each_publish_succeeds_only_on_its_own_ack() -> None:
    suffix = uuid.uuid4().hex[:8]
    client = await nats.connect(NATS)
    js = client.jetstream()
    stream = f"PAYWIRE_BATCH_{suffix}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"pbatch{suffix}.stored.>"]))
    # A plain subscriber on `silent.>` that never answers: a publish there gets no ack at all.
    silent = await client.subscribe(f"pbatch{suffix}.silent.>")
    destination = NatsDestination({"url": NATS, "subject": f"pbatch{suffix}.{{type}}", "stream": stream})
    try:
        jobs = [job(0, "stored.a"), job(1, "nostream.b"), job(2, "stored.c"), job(3, "silent.d"), job(4, "stored.e")]
        started = time.monotonic()
        outcomes = await send_batch(destination, jobs, timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert [o.ok for o in outcomes] == [True, False, True, False, True]
        assert outcomes[1].error_type == "no_stream"
        assert outcomes[3].error_type == "timeout" and outcomes[3].duration_ms >= 450
        assert [o.body for o in outcomes if o.ok] == [f"stream {stream} seq {n}" for n in (1, 2, 3)]
        # A re-send of a stored delivery is acked as a duplicate (Nats-Msg-Id is the event id).
        [again] = await send_batch(destination, [jobs[2]], timeout=2.0)
        assert again.ok and again.body == f"stream {stream} seq 2 (a duplicate: already stored)"
        # After the timeout the connection is made again, and publishing goes on.
        [after] = await send_batch(destination, [job(5, "stored.f")], timeout=2.0)
        assert after.ok and after.body == f"stream {stream} seq 4"
    finally:
        await destination.close()
        await silent.unsubscribe()
        await js.delete_stream(stream)
        await client.close()


async def test_nats_unreachable_fails_every_delivery_with_its_timeout() -> None:
    destination = NatsDestination({"url": "nats://user:hunter2@127.0.0.1:1"})
    try:
        # nats-py retries the connect until the attempt's timeout ends it.
        outcomes = await send_batch(destination, [job(i) for i in range(3)], timeout=0.3)
        assert [o.error_type for o in outcomes] == ["timeout"] * 3
        assert all("hunter2" not in (o.error or "") for o in outcomes)
    finally:
        await destination.close()

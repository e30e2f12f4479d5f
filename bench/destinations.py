"""Event destinations benchmark: each broker vs a bare publish loop, ordered vs unordered, and a
stopped broker beside HTTP. SQLite, one process (the dispatcher in-process), all on 127.0.0.1.

    .venv/bin/python bench/destinations.py [--events 2000] [--objects 1000] [--repeat 2]

Measured in one run:

  (1) per broker type (rabbitmq, nats, redis): a bare loop publishing the same signed message with
      the same client and the same semantics (publisher confirms / JetStream acks / XADD replies),
      10 publishes in flight (Paywire's per-destination cap), vs Paywire draining a backlog of the
      same size to one destination of that type (every attempt recorded): ratio, target >= 0.5;
  (2) `ordering: per_object` vs `none`: a backlog of 3 events for each of `--objects` objects to
      one webhook destination (the receiver of bench/delivery.py), target >= 0.5;
  (3) HTTP throughput with a RabbitMQ destination whose broker is stopped (a closed port) beside
      it, vs without: target cost < 10 %.

Paywire's rate is the sustained one: events per second from its first attempt's end to its last's
(the attempts log's `created`, as `bench/delivery.py` counts at its receiver from first receipt to
last), the run waiting until every attempt is recorded; its end-to-end rate (dispatcher start to
the last delivery recorded: start-up, the first claim and the last batch's `record_linger` of
0.1 s included, a fixed ~0.15 s that is most of a 2,000-event run on a fast broker) is printed
beside it. The bare loop's is from its first publish to its last confirm. Best of `--repeat`.
Under each broker's line: this process's CPU per message (all threads) on each side. Both are
CPU-bound on the one event loop, so the ratio is about bare / (bare + Paywire's own work).
Uses the shared brokers (RabbitMQ 5672, NATS 4222, Redis 6379) with names of its own, removed
afterwards. `--only nats,redis` runs some parts (rabbitmq, nats, redis, ordering, isolation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import nats
import redis.asyncio as aioredis
import sqlalchemy as sa
from nats.js.api import StreamConfig

from paywire.db import migrate
from paywire.db.engine import Database
from paywire.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.destinations import store
from paywire.events.log import NewEvent, append
from paywire.schemas import EventDestinationCreate
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from paywire.webhooks.signing import signature_headers

sys.path.insert(0, str(Path(__file__).parent))  # the delivery benchmark's receiver
from delivery import SECRET, ReceiverClient

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"
REDIS = "redis://127.0.0.1:6379/0"
IN_FLIGHT = 10
# This process's CPU per message (µs, all its threads) of each bare and Paywire run since the last
# printed line: both sides are CPU-bound on one event loop, so their costs explain the ratio.
CPU_US: dict[str, list[float]] = {"bare": [], "paywire": []}
BODY = json.dumps({"id": "evt_x", "object": "event", "type": "customer.created", "data": {"object": {"id": "cus_1"}}})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bare(n: int, publish: Callable[[int, bytes, dict[str, str]], Awaitable[None]]) -> float:
    """`n` signed messages, IN_FLIGHT at a time; messages per second."""
    body = BODY.encode()
    items = iter(range(n))

    async def lane() -> None:
        for i in items:
            event_id = f"evt_bare{i}"
            await publish(i, body, signature_headers([SECRET], event_id, int(time.time()), body))

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
    CPU_US["bare"].append((time.process_time() - cpu) / n * 1e6)
    return n / (time.monotonic() - started)


async def paywire(
    workdir: Path, n: int, destinations: list[dict[str, Any]], *, objects: int | None = None, watch: str | None = None
) -> tuple[float, float]:
    """A backlog of `n` events to `destinations`, drained by an in-process dispatcher, until every
    delivery to `watch` (default: all of them) is recorded: (sustained, end-to-end) events per
    second (see the module's docstring)."""
    db = Database(f"sqlite:///{workdir / f'd{uuid.uuid4().hex[:6]}.db'}")
    await migrate.upgrade(db)
    ids = []
    async with db.transaction() as tx:
        for fields in destinations:
            created = await store.create(
                tx, EventDestinationCreate(enabled_events=["*"], **fields), livemode=False, now=time.time()
            )
            ids.append(created["id"])
            await tx.conn.execute(
                webhook_endpoints.update().where(webhook_endpoints.c.id == created["id"]).values(secret=SECRET)
            )
    for start in range(0, n, 200):
        async with db.transaction() as tx:
            batch = range(start, min(n, start + 200))
            await append(
                tx,
                [NewEvent("customer.updated", {"id": f"cus_{i % objects if objects else i}", "n": i}) for i in batch],
                livemode=False,
                now=time.time(),
            )
    target = watch or None
    a, deliveries = webhook_attempts, webhook_deliveries
    span = sa.select(sa.func.min(a.c.created), sa.func.max(a.c.created)).where(a.c.status == "succeeded")
    if target is not None:
        watched = ids[destinations.index(next(d for d in destinations if d.get("description") == target))]
        span = span.where(a.c.endpoint_id == watched)
    counted = deliveries.c.endpoint_id.in_(ids if target is None else [watched])
    # Polled while Paywire runs in this process: one row through the claims' index, not a count
    # of every delivery (that took ~1.5 ms of CPU per poll, ~8 % of the event loop at 50 a second).
    pending = sa.select(deliveries.c.seq).where(counted, deliveries.c.status == "pending").limit(1)
    done = sa.select(sa.func.count()).where(counted, deliveries.c.status == "succeeded")
    dispatcher = Dispatcher(db, DeliveryConfig(timeout=2.0))
    started, cpu = time.monotonic(), time.process_time()
    await dispatcher.start()
    try:
        while True:
            # The database is asked only once the dispatcher has made `n` attempts (its own
            # counter, a necessary condition): a query every 20 ms from the start took 10-15 % of
            # the event loop's Python time in a py-spy profile of a NATS run, charged to Paywire.
            count = 0
            if dispatcher.sent >= n:
                async with db.read() as conn:
                    count = 0 if await conn.scalar(pending) is not None else int(await conn.scalar(done) or 0)
            if count >= n:
                break
            assert time.monotonic() - started < 120, f"not all {n} delivered within 120 s"
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        CPU_US["paywire"].append((time.process_time() - cpu) / n * 1e6)
        async with db.read() as conn:
            first, last = (await conn.execute(span)).one()
    finally:
        dispatcher.config.shutdown_grace = 0
        await dispatcher.stop()
        await db.dispose()
    return (n - 1) / max(last - first, 1e-9), n / elapsed


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The best sustained and the best end-to-end rate of the runs."""
    return max(r for r, _ in runs), max(e for _, e in runs)


async def rabbitmq(workdir: Path, n: int, repeat: int) -> tuple[float, tuple[float, float]]:
    suffix = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect(AMQP)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(f"bench-{suffix}", aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(f"bench-{suffix}", durable=True)
    await queue.bind(exchange, routing_key="#")
    try:

        async def publish(i: int, body: bytes, headers: dict[str, str]) -> None:
            message = aio_pika.Message(
                body, headers=dict(headers), message_id=f"evt_bare{i}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await exchange.publish(message, routing_key="customer.updated")

        base = max([await bare(n, publish) for _ in range(repeat)])
        await queue.purge()
        config = {"url": AMQP, "exchange": exchange.name}
        ours = best([await paywire(workdir, n, [{"type": "rabbitmq", "config": config}]) for _ in range(repeat)])
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        await connection.close()
    return base, ours


async def nats_js(workdir: Path, n: int, repeat: int) -> tuple[float, tuple[float, float]]:
    suffix = uuid.uuid4().hex[:8]
    client = await nats.connect(NATS)
    js = client.jetstream()
    stream = f"BENCH_{suffix}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"bench{suffix}.>"]))
    try:

        async def publish(i: int, body: bytes, headers: dict[str, str]) -> None:
            await js.publish(
                f"bench{suffix}.customer.updated", body, headers={**headers, "Nats-Msg-Id": f"b{i}{time.time()}"}
            )

        base = max([await bare(n, publish) for _ in range(repeat)])
        config = {"url": NATS, "subject": f"bench{suffix}.{{type}}", "stream": stream}
        ours = best([await paywire(workdir, n, [{"type": "nats", "config": config}]) for _ in range(repeat)])
    finally:
        await js.delete_stream(stream)
        await client.close()
    return base, ours


async def redis_streams(workdir: Path, n: int, repeat: int) -> tuple[float, tuple[float, float]]:
    key = f"bench-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(REDIS)
    try:

        async def publish(i: int, body: bytes, headers: dict[str, str]) -> None:
            fields: dict[Any, Any] = {"body": body, **headers}
            await client.xadd(key, fields, maxlen=100_000, approximate=True)

        base = max([await bare(n, publish) for _ in range(repeat)])
        config = {"url": REDIS, "stream": key, "maxlen": 100_000}
        ours = best([await paywire(workdir, n, [{"type": "redis", "config": config}]) for _ in range(repeat)])
    finally:
        await client.delete(key)
        await client.aclose()
    return base, ours


def line(name: str, base: float, ours: tuple[float, float], target: str) -> None:
    sustained, end_to_end = ours
    print(
        f"{name:<34} bare {base:7.0f}/s   Paywire {sustained:7.0f}/s   ratio {sustained / base:.2f}  ({target})"
        f"   end to end {end_to_end:7.0f}/s ({end_to_end / base:.2f})"
    )
    bare_cpu, ours_cpu = (min(CPU_US[side]) for side in ("bare", "paywire"))
    print(f"{'':<34} CPU per message, least of the runs: bare {bare_cpu:.0f} µs, Paywire {ours_cpu:.0f} µs")
    for runs in CPU_US.values():
        runs.clear()


async def main(args: argparse.Namespace) -> None:
    n, repeat = args.events, args.repeat
    with tempfile.TemporaryDirectory(prefix="paywire-bench-") as tmp:
        workdir = Path(tmp)
        print(f"{n} events per run, best of {repeat}, SQLite, one process, 127.0.0.1\n")
        for key, name, run in (
            ("rabbitmq", "rabbitmq (confirms, persistent)", rabbitmq),
            ("nats", "nats (JetStream acks)", nats_js),
            ("redis", "redis (XADD ~MAXLEN)", redis_streams),
        ):
            if key in args.only:
                base, ours = await run(workdir, n, repeat)
                line(name, base, ours, "target >= 0.5")
        if not {"ordering", "isolation"} & set(args.only):
            return
        port = args.port
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "delivery.py"), "--receiver", str(port), "--secret", SECRET]
        )
        receiver = ReceiverClient(f"http://127.0.0.1:{port}")
        try:
            for _ in range(100):
                try:
                    await receiver.stats()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            hook = {"url": f"{receiver.url}/hook"}
            events = args.objects * 3
            unordered, _ = best(
                [
                    await paywire(workdir, events, [{"type": "webhook", "config": hook}], objects=args.objects)
                    for _ in range(repeat)
                ]
            )
            ordered, _ = best(
                [
                    await paywire(
                        workdir,
                        events,
                        [{"type": "webhook", "config": hook, "ordering": "per_object"}],
                        objects=args.objects,
                    )
                    for _ in range(repeat)
                ]
            )
            print(
                f"{'ordered vs unordered, ' + str(args.objects) + ' objects':<34} none {unordered:7.0f}/s   "
                f"per_object {ordered:7.0f}/s   ratio {ordered / unordered:.2f}  (target >= 0.5)"
            )
            alone, _ = best([await paywire(workdir, n, [{"type": "webhook", "config": hook}]) for _ in range(repeat)])
            stopped = {"url": f"amqp://guest:guest@127.0.0.1:{closed_port()}/", "exchange": ""}
            beside, _ = best(
                [
                    await paywire(
                        workdir,
                        n,
                        [
                            {"type": "webhook", "config": hook, "description": "http"},
                            {"type": "rabbitmq", "config": stopped},
                        ],
                        watch="http",
                    )
                    for _ in range(repeat)
                ]
            )
            cost = max(0.0, 1 - beside / alone) * 100
            print(
                f"{'HTTP beside a stopped RabbitMQ':<34} alone {alone:6.0f}/s   beside {beside:7.0f}/s   "
                f"cost {cost:.0f} %  (target < 10 %)"
            )
        finally:
            await receiver.session.close()
            proc.terminate()
            proc.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="events per broker and HTTP run")
    parser.add_argument("--objects", type=int, default=1000, help="objects of the ordering run (3 events each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best counts)")
    parser.add_argument("--port", type=int, default=8921)
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=["rabbitmq", "nats", "redis", "ordering", "isolation"],
        help="comma-separated parts to run (default: rabbitmq,nats,redis,ordering,isolation)",
    )
    asyncio.run(main(parser.parse_args()))

"""Prometheus metrics (prometheus-client), every name starting with `paywire_`.

Two kinds:
- counters and histograms this process updates as work happens (API requests, delivery
  attempts, database outages), in prometheus-client's default registry;
- gauges read from the database when `/metrics` is scraped (pending deliveries and the age of
  the oldest, retries scheduled, endpoints by status, billing jobs due and their lag, EventBus
  consumers and how far behind each is), so every process reports the deployment's state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.db.engine import Database
from paywire.db.schema import billing_jobs, event_consumers, events, webhook_deliveries, webhook_endpoints

API_REQUESTS = Counter(
    "paywire_api_requests", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
API_LATENCY = Histogram(
    "paywire_api_request_duration_seconds",
    "Time to answer an HTTP request (streams excluded), by route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ATTEMPTS = Counter(
    "paywire_delivery_attempts", "Delivery attempts made by this process, by destination type and outcome.",
    ["destination", "outcome"],
)  # fmt: skip


def count_attempts(destination: str, *, succeeded: int, failed: int) -> None:
    if succeeded:
        ATTEMPTS.labels(destination, "succeeded").inc(succeeded)
    if failed:
        ATTEMPTS.labels(destination, "failed").inc(failed)


# Commit of the event -> the destination's response, for an event's first attempt only (a retry's
# time is the schedule's, not the system's): the attempts recorder (`webhooks/attempts.py`) calls
# `observe_delivery_latency` with each first attempt's end less the time its delivery was written.
DELIVERY_LATENCY = Histogram(
    "paywire_delivery_latency_seconds",
    "Time from an event's commit to its destination's response, first attempts, by destination type.",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def observe_delivery_latency(destination: str, seconds: Iterable[float]) -> None:
    histogram = DELIVERY_LATENCY.labels(destination)
    for value in seconds:
        histogram.observe(max(0.0, value))


DATABASE_ERRORS = Counter("paywire_database_errors", "API requests that met a database outage, by kind.", ["kind"])


class DatabaseState:
    """The deployment's state as gauges, read in one short transaction per scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.families: list[Metric] = []

    async def refresh(self) -> None:
        now = time.time()
        d, j = webhook_deliveries, billing_jobs
        async with self.db.read() as conn:
            pending = (
                await conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.min(d.c.created),
                        sa.func.count().filter(d.c.attempts > 0),
                    ).where(d.c.status == "pending")
                )
            ).one()
            endpoint_rows = (
                await conn.execute(
                    sa.select(webhook_endpoints.c.status, sa.func.count()).group_by(webhook_endpoints.c.status)
                )
            ).all()
            due = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(j.c.due)).where(
                        j.c.status == "pending", j.c.test_clock_id.is_(None), j.c.due <= int(now)
                    )
                )
            ).one()
            head = int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))) or 0)
            consumers = (
                await conn.execute(
                    sa.select(event_consumers.c.name, event_consumers.c.scope, event_consumers.c.last_seq)
                )
            ).all()
        families: list[Metric] = []

        def gauge(name: str, doc: str, value: float) -> None:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            families.append(family)

        gauge("paywire_deliveries_pending", "Deliveries waiting to be sent or retried.", pending[0])
        gauge(
            "paywire_deliveries_retrying",
            "Pending deliveries that failed at least once (a retry is scheduled).",
            pending[2],
        )
        oldest = max(0.0, now - float(pending[1])) if pending[1] is not None else 0.0
        gauge("paywire_delivery_oldest_pending_seconds", "Age of the oldest pending delivery.", oldest)
        endpoints = GaugeMetricFamily("paywire_webhook_endpoints", "Webhook endpoints, by status.", labels=["status"])
        counts = {"enabled": 0, "disabled": 0, **{status: count for status, count in endpoint_rows}}
        for status, count in sorted(counts.items()):
            endpoints.add_metric([status], count)
        families.append(endpoints)
        gauge("paywire_billing_jobs_due", "Wall-clock billing jobs due now and not yet run.", due[0])
        lag = max(0.0, now - float(due[1])) if due[1] is not None else 0.0
        gauge("paywire_billing_jobs_lag_seconds", "How late the oldest due billing job is.", lag)
        behind = GaugeMetricFamily(
            "paywire_eventbus_consumer_lag_events",
            "Events a durable EventBus consumer has not handled yet.",
            labels=["name", "scope"],
        )
        for name, scope, last_seq in consumers:
            behind.add_metric([name, scope], max(0, head - int(last_seq)))
        families.append(behind)
        self.families = families


class _Snapshot(Collector):
    def __init__(self, state: DatabaseState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield from self.state.families


async def exposition(db: Database) -> bytes:
    """The text format for a scrape: this process's counters, then the database gauges."""
    state = DatabaseState(db)
    await state.refresh()
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(_Snapshot(state))
    return generate_latest(REGISTRY) + generate_latest(gauges)


def _route_of(route: object) -> str:
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class _Series(NamedTuple):
    """The children of one (method, route, status): looked up once, then reused."""

    requests: Counter
    latency: Histogram | None  # None for the routes whose time is not measured (streams)


class RequestMetrics:
    """ASGI middleware counting every HTTP request by route template and status.

    `labels()` validates, converts and locks on every call, so each (method, route template,
    status) is resolved once into its children and kept.
    """

    def __init__(self, app: ASGIApp, skip: Iterable[str] = ("/api/events/stream",)) -> None:
        self.app = app
        self.skip = frozenset(skip)
        self._series: dict[tuple[str, str, int], _Series] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            series = self._series_of(scope["method"], _route_of(scope.get("route")), status)
            series.requests.inc()
            if series.latency is not None:
                series.latency.observe(time.perf_counter() - started)

    def _series_of(self, method: str, route: str, status: int) -> _Series:
        name = (method, route, status)
        series = self._series.get(name)
        if series is None:
            latency = None if route in self.skip else API_LATENCY.labels(method, route)
            series = self._series[name] = _Series(API_REQUESTS.labels(method, route, str(status)), latency)
        return series

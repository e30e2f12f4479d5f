"""Attempt rollups: per endpoint and UTC hour, attempts by outcome and a latency histogram.

`attempts.record` counts each batch it records (`Tally`) inside the same transaction: one
upsert per (endpoint, hour) of the batch, not one per attempt. The dashboard's overview chart and
the endpoints' health (success rate, p50/p95 latency) read `window` hours of these rows, a few
dozen per endpoint, instead of every attempt of the day. `rebuild` recomputes them from the
attempts log (the migration that creates the table does the same for existing attempts).

Latency percentiles come from the histogram: the bucket holding the rank, interpolated linearly
inside it, so a figure is exact to within its bucket (10 ms wide under 50 ms, wider above).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.dialect import insert_for, is_postgres
from paywire.db.schema import webhook_attempt_rollups, webhook_attempts, webhook_endpoints

r = webhook_attempt_rollups
HOUR = 3600
HOURS = 24  # the window the pages show: the current hour and the 23 before it
SLOTS = 8
# Upper bounds (ms, exclusive) of the latency buckets l0…l10; l11 is everything from 10 s on.
LATENCY_BOUNDS = (10, 25, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10_000)
LATENCY = tuple(f"l{i}" for i in range(len(LATENCY_BOUNDS) + 1))
COUNTS = ("succeeded", "failed", *LATENCY)


def hour_of(when: float) -> int:
    return int(when // HOUR) * HOUR


def window_start(now: float) -> int:
    """The first hour of the window ending with the current hour."""
    return hour_of(now) - (HOURS - 1) * HOUR


def slot_of(owner: str) -> int:
    """Each worker keeps to its own rows (a stable hash of its owner id): concurrent batches for
    one endpoint then update different rows and never queue on a row lock."""
    return zlib.crc32(owner.encode()) % SLOTS


def bucket_of(duration_ms: int) -> int:
    return bisect.bisect_right(LATENCY_BOUNDS, duration_ms)


class Tally:
    """The rollup increments of a batch of attempts, one row per (endpoint, hour), counted as the
    attempts are made into rows (`attempts.record`), not in a second pass over them."""

    def __init__(self, owner: str) -> None:
        self.slot = slot_of(owner)
        self._groups: dict[tuple[str, int], dict[str, Any]] = {}

    def count(self, endpoint_id: str, livemode: bool, created: float, succeeded: bool, duration_ms: int) -> None:
        key = (endpoint_id, hour_of(created))
        row = self._groups.get(key)
        if row is None:
            row = self._groups[key] = {
                "endpoint_id": endpoint_id, "hour": key[1], "slot": self.slot, "livemode": livemode,
                **dict.fromkeys(COUNTS, 0),
            }  # fmt: skip
        row["succeeded" if succeeded else "failed"] += 1
        row[LATENCY[bucket_of(duration_ms)]] += 1

    def rows(self) -> list[dict[str, Any]]:
        """Sorted, so that concurrent upserts take their row locks in one order."""
        return [self._groups[key] for key in sorted(self._groups)]


def rows_for(attempts: Iterable[Mapping[Any, Any]], *, owner: str) -> list[dict[str, Any]]:
    """Rollup increments for attempt rows (as inserted into `webhook_attempts`), one per
    (endpoint, hour), sorted so that concurrent upserts take their row locks in one order."""
    tally = Tally(owner)
    for attempt in attempts:
        tally.count(
            attempt["endpoint_id"],
            attempt["livemode"],
            attempt["created"],
            attempt["status"] == "succeeded",
            attempt["duration_ms"],
        )
    return tally.rows()


@functools.cache
def _upsert(postgres: bool) -> sa.Insert:
    insert = insert_for(r, postgres)
    return insert.on_conflict_do_update(
        index_elements=[r.c.endpoint_id, r.c.hour, r.c.slot],
        set_={name: r.c[name] + insert.excluded[name] for name in COUNTS},
    )


async def add(conn: AsyncConnection, attempts: Sequence[Mapping[str, Any]], *, owner: str) -> None:
    """Count a batch of recorded attempts in the rollups: one executemany of an upsert."""
    await write(conn, rows_for(attempts, owner=owner))


async def write(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add rollup increments (`Tally.rows`, `rows_for`): one executemany of an upsert."""
    if rows:
        await conn.execute(_upsert(is_postgres(conn)), list(rows))


def _hour_expression(postgres: bool) -> sa.ColumnElement[int]:
    created = webhook_attempts.c.created
    if postgres:  # a cast to integer rounds on PostgreSQL; the hour is the floor
        return sa.cast(sa.func.floor(created / HOUR) * HOUR, sa.BigInteger)
    seconds = sa.cast(created, sa.BigInteger)  # SQLite truncates (created is never negative)
    return seconds - seconds % HOUR


def _count_where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def backfill_select(postgres: bool) -> sa.Select[Any]:
    """Every attempt rolled up (slot 0), for an INSERT … SELECT."""
    a = webhook_attempts
    hour = _hour_expression(postgres).label("hour")
    ms = a.c.duration_ms
    buckets = [_count_where(ms < LATENCY_BOUNDS[0]).label(LATENCY[0])]
    for i, (lower, upper) in enumerate(itertools.pairwise(LATENCY_BOUNDS), start=1):
        buckets.append(_count_where(sa.and_(ms >= lower, ms < upper)).label(LATENCY[i]))
    buckets.append(_count_where(ms >= LATENCY_BOUNDS[-1]).label(LATENCY[-1]))
    return sa.select(
        a.c.endpoint_id,
        hour,
        sa.literal(0, sa.SmallInteger).label("slot"),
        a.c.livemode,
        _count_where(a.c.status == "succeeded").label("succeeded"),
        _count_where(a.c.status != "succeeded").label("failed"),
        *buckets,
    ).group_by(a.c.endpoint_id, hour, a.c.livemode)


async def rebuild(conn: AsyncConnection) -> None:
    """Recompute every rollup from the attempts log (a bulk load, or a repair)."""
    await conn.execute(r.delete())
    columns = ["endpoint_id", "hour", "slot", "livemode", *COUNTS]
    await conn.execute(r.insert().from_select(columns, backfill_select(is_postgres(conn))))


@dataclass
class Health:
    attempts: int = 0
    succeeded: int = 0
    p50: int | None = None
    p95: int | None = None

    @property
    def success_rate(self) -> float | None:
        return None if not self.attempts else 100.0 * self.succeeded / self.attempts


def percentile(histogram: Sequence[int], q: float) -> int | None:
    """The `q` quantile of a latency histogram (rank as `sorted(values)[round(q * (n - 1))]`),
    interpolated inside its bucket; the open last bucket gives its lower bound."""
    total = sum(histogram)
    if not total:
        return None
    rank = min(total - 1, max(0, round(q * (total - 1))))
    below = 0
    for i, count in enumerate(histogram):
        if rank < below + count:
            lower = LATENCY_BOUNDS[i - 1] if i else 0
            if i == len(LATENCY_BOUNDS):
                return lower
            return int(lower + (LATENCY_BOUNDS[i] - lower) * (rank - below + 0.5) / count)
        below += count
    return None  # not reached: the ranks are below the total


async def health(conn: AsyncConnection, endpoint_ids: Sequence[str], now: float) -> dict[str, Health]:
    """Each endpoint's attempts in the window: one grouped read of the rollups (the primary key's
    `(endpoint_id, hour)` prefix), every endpoint present in the result."""
    result = {endpoint_id: Health() for endpoint_id in endpoint_ids}
    if not endpoint_ids:
        return result
    rows = await conn.execute(
        sa.select(r.c.endpoint_id, *(sa.func.sum(r.c[name]) for name in COUNTS))
        .where(r.c.endpoint_id.in_(list(endpoint_ids)), r.c.hour >= window_start(now))
        .group_by(r.c.endpoint_id)
    )
    for endpoint_id, succeeded, failed, *histogram in rows:
        counts = [int(c or 0) for c in histogram]
        result[endpoint_id] = Health(
            attempts=int(succeeded or 0) + int(failed or 0),
            succeeded=int(succeeded or 0),
            p50=percentile(counts, 0.5),
            p95=percentile(counts, 0.95),
        )
    return result


async def hourly(conn: AsyncConnection, livemode: bool, now: float) -> list[dict[str, Any]]:
    """Attempts per hour of the window by outcome, oldest hour first, over the mode's endpoints
    (an endpoint deleted since is no longer counted, as before the rollups)."""
    start = window_start(now)
    buckets = [{"start": start + i * HOUR, "succeeded": 0, "failed": 0} for i in range(HOURS)]
    mine = sa.select(webhook_endpoints.c.id).where(webhook_endpoints.c.livemode == livemode)
    rows = await conn.execute(
        sa.select(r.c.hour, sa.func.sum(r.c.succeeded), sa.func.sum(r.c.failed))
        .where(r.c.livemode == livemode, r.c.hour >= start, r.c.endpoint_id.in_(mine))
        .group_by(r.c.hour)
    )
    for hour, succeeded, failed in rows:
        index = (int(hour) - start) // HOUR
        if 0 <= index < HOURS:
            buckets[index]["succeeded"] += int(succeeded or 0)
            buckets[index]["failed"] += int(failed or 0)
    return buckets


async def subtract(
    conn: AsyncConnection, removing: sa.ColumnElement[bool], source: sa.TableClause = webhook_attempts
) -> None:
    """Take the attempts matching `removing` out of the rollups, before retention deletes them
    in the same transaction: the rollups keep summing to the attempts stored, which is what lets
    `count` answer the API's totals. `source` is the table they are deleted from (on PostgreSQL
    one partition of `webhook_attempts`)."""
    a = source
    query = sa.select(a.c.endpoint_id, a.c.livemode, a.c.created, a.c.status, a.c.duration_ms).where(removing)
    rows = rows_for((await conn.execute(query)).mappings().all(), owner="retention")
    for row in rows:
        for name in COUNTS:
            row[name] = -row[name]
    if rows:
        await conn.execute(_upsert(is_postgres(conn)), rows)


async def forget_hours(conn: AsyncConnection, since: float | None, until: float) -> None:
    """Remove the rollups of the hours in [since, until) whole: for when every attempt of those
    hours goes at once (a day partition of the attempts dropped, PostgreSQL)."""
    hours = [r.c.hour < until] if since is None else [r.c.hour >= since, r.c.hour < until]
    await conn.execute(r.delete().where(*hours))


async def prune(conn: AsyncConnection, cutoff: float) -> int:
    """Remove the rows of hours older than `cutoff` whose attempts are all gone (their slots sum
    to zero once retention has subtracted every one of them)."""
    old = r.c.hour <= cutoff - HOUR
    emptied = (
        sa.select(r.c.endpoint_id, r.c.hour)
        .where(old)
        .group_by(r.c.endpoint_id, r.c.hour)
        .having(sa.func.sum(r.c.succeeded + r.c.failed) == 0)
    )
    removed = (await conn.execute(r.delete().where(old, sa.tuple_(r.c.endpoint_id, r.c.hour).in_(emptied)))).rowcount
    return int(removed or 0)


async def count(
    conn: AsyncConnection, livemode: bool, *, endpoint_id: str | None = None, status: str | None = None
) -> int:
    """How many attempts are stored (of one endpoint, of one status): the sum of the rollups, a
    few rows per endpoint and hour instead of a scan of the attempts log."""
    column = {"succeeded": r.c.succeeded, "failed": r.c.failed}.get(status or "", r.c.succeeded + r.c.failed)
    query = sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(r.c.livemode == livemode)
    if endpoint_id:
        query = query.where(r.c.endpoint_id == endpoint_id)
    return int(await conn.scalar(query) or 0)

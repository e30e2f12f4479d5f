"""The delivery rows: claiming due ones under a lease, and putting them back in the queue.

A claim leases rows to one dispatcher (`lease_owner`, `lease_until`); a crashed dispatcher's
rows become claimable again when the lease runs out, which is what makes delivery at-least-once.
PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row;
SQLite claims inside a `BEGIN IMMEDIATE` write transaction, where there is one writer anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.engine import Tx
from paywire.db.schema import events, webhook_deliveries, webhook_endpoints
from paywire.db.signal import CHANNEL
from paywire.events import catalogue
from paywire.events import log as event_log
from paywire.webhooks.endpoints import valid_secrets

d = webhook_deliveries
e = webhook_endpoints

MAX_ENDPOINTS_PER_CLAIM = 100  # more endpoints with due work are served by the next claims


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, with everything needed to send it."""

    seq: int
    event_id: str
    endpoint_id: str
    livemode: bool
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempts: int  # attempts made before this one
    lease_until: float  # the claim is ours until then; never start a request that could outlast it


def _due(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(
        d.c.status == "pending",
        d.c.next_attempt <= now,
        sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
    )


def any_of(conn: AsyncConnection, column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`, one prepared statement whatever
    the count (an IN list is a new statement, prepared and planned again, for every batch size)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.literal(list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def still_leased(conn: AsyncConnection, seqs: Collection[int], owner: str) -> sa.ColumnElement[bool]:
    """Deliveries `seqs` that are still pending and leased to `owner`, found by their key."""
    return sa.and_(any_of(conn, d.c.seq, seqs), d.c.lease_owner == owner, d.c.status == "pending")


async def enabled_endpoints(tx: Tx) -> list[str]:
    return list((await tx.conn.execute(sa.select(e.c.id).where(e.c.status == "enabled").order_by(e.c.seq))).scalars())


async def claim(
    tx: Tx,
    *,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    quotas: Mapping[str, int],
    default_quota: int,
    exclude: Collection[str],
    start: int = 0,
    endpoints: Sequence[str] | None = None,
) -> list[Job]:
    """Lease up to `limit` due deliveries of enabled endpoints, at most a quota per endpoint.

    Each endpoint's due rows are read through its own index range, so one endpoint's backlog
    can neither fill the batch (fair claiming) nor make the claim slow when it is excluded
    (`exclude`: endpoints this dispatcher is not taking now, being full or backed off).
    `start` rotates which endpoints are asked first when there are more than fit in one claim.
    `endpoints` is a recent list of enabled endpoints (read here if not given); the claim itself
    re-checks that each endpoint is still enabled.
    """
    if limit <= 0:
        return []
    conn = tx.conn
    enabled = list(endpoints) if endpoints is not None else await enabled_endpoints(tx)
    if enabled:
        first = start % len(enabled)
        enabled = enabled[first:] + enabled[:first]
    skip = set(exclude)
    ordered = [i for i in enabled if i not in skip]
    per_endpoint: list[sa.Select[Any]] = []
    postgres = conn.dialect.name == "postgresql"
    for endpoint_id in ordered[:MAX_ENDPOINTS_PER_CLAIM]:
        quota = min(quotas.get(endpoint_id, default_quota), limit)
        if quota <= 0:
            continue
        still_enabled = sa.exists().where(e.c.id == endpoint_id, e.c.status == "enabled")
        query = (
            sa.select(d.c.seq)
            .where(d.c.endpoint_id == endpoint_id, _due(now), still_enabled)
            .order_by(d.c.next_attempt)
            .limit(quota)
        )
        # PostgreSQL: rows another worker is claiming right now are skipped, not waited for,
        # and the next ones in the range are taken instead.
        per_endpoint.append(query.with_for_update(skip_locked=True) if postgres else query)
    if not per_endpoint:
        return []
    # Materialized: evaluated once. PostgreSQL may otherwise re-run a LIMIT … SKIP LOCKED
    # subquery inside IN for every row, and take (and skip) far more rows than asked.
    union = sa.union_all(*(sa.select(q.subquery().c.seq) for q in per_endpoint)).subquery()
    due_rows = sa.select(union.c.seq).limit(limit).cte("due").prefix_with("MATERIALIZED")
    claimed = (
        await conn.execute(
            d.update()
            # UPDATE … FROM, joined on the key alone: driven by the few picked rows (other
            # shapes let PostgreSQL, before ANALYZE has run, scan every due row first).
            .where(d.c.seq == due_rows.c.seq)
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(d.c.seq, d.c.event_id, d.c.endpoint_id, d.c.livemode, d.c.attempts)
        )
    ).all()
    if not claimed:
        return []
    # Each endpoint and each event is read once, however many of the claimed rows share it.
    targets = {
        row.id: (row.url, tuple(valid_secrets(row._mapping, now)))
        for row in await conn.execute(
            sa.select(e.c.id, e.c.url, e.c.secret, e.c.previous_secrets).where(
                any_of(conn, e.c.id, {r.endpoint_id for r in claimed})
            )
        )
    }
    bodies = {
        row.id: event_log.render_json(row._mapping)
        for row in await conn.execute(
            event_log.select_events_json().where(any_of(conn, events.c.id, {r.event_id for r in claimed}))
        )
    }
    return [
        Job(
            seq=r.seq,
            event_id=r.event_id,
            endpoint_id=r.endpoint_id,
            livemode=r.livemode,
            url=targets[r.endpoint_id][0],
            secrets=targets[r.endpoint_id][1],
            body=bodies[r.event_id],
            attempts=r.attempts,
            lease_until=now + lease,
        )
        for r in sorted(claimed, key=lambda r: r.seq)  # roughly the order the events were written
        # (An endpoint deleted meanwhile cannot be missing: deleting it waits on these rows'
        # locks to cancel them. Were one missing, its rows would just wait out their lease.)
        if r.endpoint_id in targets and r.event_id in bodies
    ]


async def release(tx: Tx, owner: str, seqs: Collection[int]) -> None:
    """Give back leased rows that were never sent (a clean shutdown), so others take them at once."""
    if seqs:
        await tx.conn.execute(
            d.update().where(still_leased(tx.conn, seqs, owner)).values(lease_until=None, lease_owner=None)
        )


async def _wake_workers(tx: Tx) -> None:
    """Deliveries became due: wake dispatchers once this commits (other processes via NOTIFY)."""
    if tx.conn.dialect.name == "postgresql":
        await tx.conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


async def enqueue(tx: Tx, event_id: str, endpoint_ids: Collection[str], *, livemode: bool, now: float) -> None:
    """Queue `event_id` to each endpoint now: a waiting delivery is made due at once, else a new one.

    A delivery being sent right now (leased) does not count as waiting: its outcome may already
    be on the wire, so the resend gets a row of its own.
    """
    if not endpoint_ids:
        return
    await _wake_workers(tx)
    waiting = sa.and_(
        d.c.event_id == event_id,
        d.c.status == "pending",
        sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
    )
    pending = set(
        (
            await tx.conn.execute(sa.select(d.c.endpoint_id).where(waiting, d.c.endpoint_id.in_(list(endpoint_ids))))
        ).scalars()
    )
    if pending:
        await tx.conn.execute(
            d.update().where(waiting, d.c.endpoint_id.in_(list(pending))).values(next_attempt=now, updated=int(now))
        )
    new = [i for i in endpoint_ids if i not in pending]
    if new:
        await tx.conn.execute(
            d.insert(),
            [
                {
                    "event_id": event_id,
                    "endpoint_id": endpoint_id,
                    "livemode": livemode,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt": now,
                    "created": int(now),
                    "updated": int(now),
                }
                for endpoint_id in new
            ],
        )


async def matching_endpoints(tx: Tx, event_type: str, *, livemode: bool) -> list[str]:
    rows = await tx.conn.execute(
        sa.select(e.c.id, e.c.enabled_events).where(e.c.livemode == livemode, e.c.status == "enabled").order_by(e.c.seq)
    )
    return [r.id for r in rows if catalogue.matches(r.enabled_events, event_type)]


async def recover(tx: Tx, endpoint_id: str, *, since: float, now: float) -> int:
    """Re-queue every delivery to the endpoint that failed for good, created at or after `since`."""
    result = await tx.conn.execute(
        d.update()
        .where(d.c.endpoint_id == endpoint_id, d.c.status == "failed", d.c.created >= since)
        .values(status="pending", attempts=0, next_attempt=now, lease_until=None, lease_owner=None, updated=int(now))
    )
    if result.rowcount:
        await _wake_workers(tx)
    return int(result.rowcount)


async def resume(tx: Tx, endpoint_id: str, *, now: float) -> None:
    """A re-enabled endpoint: its pending deliveries are due now (not at their back-off time)."""
    await _wake_workers(tx)
    await tx.conn.execute(
        d.update()
        .where(d.c.endpoint_id == endpoint_id, d.c.status == "pending")
        .values(next_attempt=now, updated=int(now))
    )


async def cancel_pending(tx: Tx, endpoint_id: str, *, now: float, reason: str) -> None:
    """A deleted endpoint: its pending deliveries are canceled (they no longer count in `pending_webhooks`)."""
    await tx.conn.execute(
        d.update()
        .where(d.c.endpoint_id == endpoint_id, d.c.status == "pending")
        .values(status="canceled", updated=int(now), last_error=reason)
    )

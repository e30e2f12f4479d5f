"""The attempts log: recording a batch of outcomes in one transaction, and listing attempts.

Recording is where a delivery's fate is decided: done (2xx), failed for good (410, or the
retry schedule spent), or due again later. A 410 or 5 days without success disables the endpoint
and emits `webhook_endpoint.disabled`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.clock import iso
from paywire.db.dialect import insert_tuples, is_postgres, list_param
from paywire.db.engine import Tx
from paywire.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from paywire.destinations import store
from paywire.events import targets
from paywire.events.log import NewEvent, append
from paywire.ids import new_id
from paywire.ops import metrics
from paywire.webhooks import endpoints, rollups
from paywire.webhooks.delivery import still_leased
from paywire.webhooks.retry import next_retry as schedule_next
from paywire.webhooks.retry import parse_retry_after
from paywire.webhooks.sender import SendOutcome

a = webhook_attempts
d = webhook_deliveries
e = webhook_endpoints

AUTO_DISABLE_AFTER = 5 * 86400.0


@dataclass(frozen=True)
class RetrySchedule:
    schedule: Sequence[float]
    jitter: float
    auto_disable_after: float = AUTO_DISABLE_AFTER


def render(m: Any) -> dict[str, Any]:
    return {
        "id": m["id"],
        "object": "webhook_attempt",
        "livemode": m["livemode"],
        "event_id": m["event_id"],
        "webhook_endpoint_id": m["endpoint_id"],
        "status": m["status"],
        "response_status": m["response_status"],
        "response_body": m["response_body"],
        "retry_count": m["retry_count"],
        "duration_ms": m["duration_ms"],
        "error": m["error"],
        "error_type": m["error_type"],
        "next_retry_at": iso(m["next_retry"]) if m["next_retry"] is not None else None,
        "next_retry": int(m["next_retry"]) if m["next_retry"] is not None else None,
        "created": int(m["created"]),
        "created_at": iso(m["created"]),
    }


def listing(
    livemode: bool,
    *,
    event_id: str | None = None,
    endpoint_id: str | None = None,
    status: str | None = None,
) -> sa.Select[Any]:
    query = sa.select(a).where(a.c.livemode == livemode)
    if event_id:
        query = query.where(a.c.event_id == event_id)
    if endpoint_id:
        query = query.where(a.c.endpoint_id == endpoint_id)
    if status:
        query = query.where(a.c.status == status)
    return query


# The attempts log's columns as `record` writes them: one tuple per attempt, in this order.
ATTEMPT_COLUMNS = (
    "id", "livemode", "delivery_seq", "event_id", "endpoint_id", "status", "response_status", "response_body",
    "retry_count", "duration_ms", "error", "error_type", "next_retry", "created",
)  # fmt: skip


async def record(tx: Tx, outcomes: Sequence[SendOutcome], *, owner: str, now: float, policy: RetrySchedule) -> None:
    """Write a batch of outcomes: attempts, delivery states, counters and endpoint health.

    Set-based: one statement per kind of write for the whole batch (the attempts, their rollups,
    the deliveries done, failed for good and due again, the endpoints' health), whatever its size.
    """
    if not outcomes:
        return
    rng = random.Random()
    attempt_rows: list[tuple[Any, ...]] = []
    tally = rollups.Tally(owner)  # the dashboard's per-hour figures
    done: list[int] = []
    gave_up: list[dict[str, Any]] = []
    retry_rows: list[dict[str, Any]] = []
    succeeded: dict[str, float] = {}
    failing: dict[str, float] = {}
    gone: set[str] = set()
    stamp = int(now)
    for o in outcomes:
        job = o.job
        attempts = job.attempts + 1
        when: float | None = None
        if o.ok:
            done.append(job.seq)
            succeeded[job.endpoint_id] = o.finished
        else:
            failing.setdefault(job.endpoint_id, o.finished)
            if o.status == 410 or o.disable:
                gone.add(job.endpoint_id)
            elif not o.give_up:
                when = schedule_next(
                    attempts,
                    o.finished,
                    schedule=policy.schedule,
                    retry_after=parse_retry_after(o.retry_after, o.finished),
                    jitter=policy.jitter,
                    rng=rng,
                )
            if when is None:
                gave_up.append({"k_seq": job.seq, "k_owner": owner, "err": o.error, "now": stamp})
            else:
                retry_rows.append(
                    {"k_seq": job.seq, "k_owner": owner, "n": attempts, "at": when, "err": o.error, "now": stamp}
                )
        attempt_rows.append(
            (
                new_id("wha"), job.livemode, job.seq, job.event_id, job.endpoint_id,
                "succeeded" if o.ok else "failed", o.status, o.body, job.attempts, o.duration_ms,
                o.error, o.error_type, when, o.finished,
            )
        )  # fmt: skip
        tally.count(job.endpoint_id, job.livemode, o.finished, o.ok, o.duration_ms)
    conn = tx.conn
    postgres = is_postgres(conn)
    await insert_tuples(conn, a, ATTEMPT_COLUMNS, attempt_rows)
    await rollups.write(conn, tally.rows())
    _observe(outcomes)
    # Only rows still leased to us: if our lease lapsed and another worker took the row, its
    # outcome decides (our attempt is still logged; the receiver de-duplicates on webhook-id).
    if done:
        await conn.execute(
            _finished_statement(postgres), {"owner": owner, "now": stamp, "seqs": list_param(done, postgres)}
        )
    if gave_up:
        await conn.execute(_GAVE_UP, gave_up)
    if retry_rows:
        await conn.execute(_RETRY, retry_rows)
    await _endpoint_health(tx, succeeded, failing, gone, now=now, policy=policy)


@functools.cache
def _finished_statement(postgres: bool) -> sa.Update:
    """Deliveries `:seqs` succeeded."""
    return (
        d.update()
        .where(still_leased(postgres))
        .values(
            status="succeeded",
            attempts=d.c.attempts + 1,
            lease_until=None,
            last_error=None,
            updated=sa.bindparam("now"),
        )
    )


# The next three by one delivery's key each, for an executemany: still pending and leased to us.
_mine = sa.and_(d.c.seq == sa.bindparam("k_seq"), d.c.lease_owner == sa.bindparam("k_owner"), d.c.status == "pending")
_GAVE_UP = (  # failed for good, with its last error
    d.update()
    .where(_mine)
    .values(
        status="failed",
        attempts=d.c.attempts + 1,
        lease_until=None,
        last_error=sa.bindparam("err"),
        updated=sa.bindparam("now"),
    )
)
_RETRY = (
    d.update()
    .where(_mine)
    .values(
        attempts=sa.bindparam("n"),
        next_attempt=sa.bindparam("at"),
        last_error=sa.bindparam("err"),
        lease_until=None,
        updated=sa.bindparam("now"),
    )
)
_FAILING = (  # the first failure since the last success starts the auto-disable window
    e.update()
    .where(e.c.id == sa.bindparam("endpoint_id"), e.c.failing_since.is_(None))
    .values(failing_since=sa.bindparam("since"))
)
# At most once a second while healthy: every worker's every batch would otherwise rewrite the
# endpoint's row, and on PostgreSQL the workers' batches would queue on its row lock.
_succeeded_at = sa.bindparam("at", type_=sa.Float)
_HEALTHY = (
    e.update()
    .where(
        e.c.id == sa.bindparam("endpoint_id"),
        sa.or_(e.c.failing_since.is_not(None), e.c.last_success.is_(None), e.c.last_success < _succeeded_at - 1),
    )
    .values(last_success=_succeeded_at, failing_since=None)
)


async def _endpoint_health(
    tx: Tx,
    succeeded: dict[str, float],
    failing: dict[str, float],
    gone: set[str],
    *,
    now: float,
    policy: RetrySchedule,
) -> None:
    conn = tx.conn
    if succeeded:
        # One executemany, not a statement per endpoint: a fan-out batch touches a hundred or more.
        await conn.execute(_HEALTHY, [{"endpoint_id": i, "at": at} for i, at in succeeded.items()])
    still_failing = [i for i in failing if i not in succeeded]
    if still_failing:
        await conn.execute(_FAILING, [{"endpoint_id": i, "since": failing[i]} for i in still_failing])
    # 410 Gone: the receiver says the endpoint no longer exists. Otherwise: failing, and no
    # success for the auto-disable window (counted from the first failure after the last success).
    stale = set()
    if still_failing:
        stale = set(
            (
                await conn.execute(
                    sa.select(e.c.id).where(
                        e.c.id.in_(still_failing),
                        e.c.failing_since <= now - policy.auto_disable_after,
                        sa.or_(e.c.last_success.is_(None), e.c.last_success <= now - policy.auto_disable_after),
                    )
                )
            ).scalars()
        )
    for endpoint_id in sorted(gone | stale):
        await disable(tx, endpoint_id, reason="gone" if endpoint_id in gone else "failing", now=now)


async def disable(tx: Tx, endpoint_id: str, *, reason: str, now: float) -> None:
    """Disable an enabled endpoint (its deliveries stay pending) and emit `webhook_endpoint.disabled`."""
    row = (await tx.conn.execute(sa.select(e).where(e.c.id == endpoint_id, e.c.status == "enabled"))).mappings().first()
    if row is None:
        return
    await tx.conn.execute(
        e.update().where(e.c.seq == row["seq"]).values(status="disabled", disabled_reason=reason, updated=int(now))
    )
    await targets.bump(tx.conn)
    after = {**row, "status": "disabled", "disabled_reason": reason, "updated": int(now)}
    if row["type"] == "webhook":  # as /api/webhook-endpoints shows it (the contract)
        before_obj, after_obj = endpoints.render(row), endpoints.render(after)
    else:  # a broker has no url: as /api/event-destinations shows it (masked config, no secret)
        before_obj, after_obj = store.render(row, tx.keyring), store.render(after, tx.keyring)
    await append(
        tx,
        [NewEvent("webhook_endpoint.disabled", after_obj, objects.previous(before_obj, after_obj))],
        livemode=row["livemode"],
        now=now,
    )


def _observe(outcomes: Sequence[SendOutcome]) -> None:
    """The attempts, and the first attempts' latency from the event's write to the answer, in
    `/metrics`, by destination type."""
    by_type: dict[str, list[SendOutcome]] = {}
    for o in outcomes:
        by_type.setdefault(o.job.type, []).append(o)
    for kind, group in by_type.items():
        succeeded = sum(1 for o in group if o.ok)
        metrics.count_attempts(kind, succeeded=succeeded, failed=len(group) - succeeded)
        metrics.observe_delivery_latency(kind, [o.finished - o.job.due for o in group if o.job.attempts == 0])

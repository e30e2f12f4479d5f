"""The delivery rows: claiming due ones under a lease, and putting them back in the queue.

A claim leases rows to one dispatcher (`lease_owner`, `lease_until`); a crashed dispatcher's
rows become claimable again when the lease runs out, which is what makes delivery at-least-once.
PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row;
SQLite claims inside a `BEGIN IMMEDIATE` write transaction, where there is one writer anyway.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import objects
from paywire.db import dialect
from paywire.db.dialect import in_list, is_postgres, list_param
from paywire.db.engine import Tx
from paywire.db.schema import events, webhook_deliveries, webhook_endpoints
from paywire.db.signal import CHANNEL
from paywire.errors import NotFound, StateError
from paywire.events import catalogue
from paywire.events import log as event_log
from paywire.secrets_at_rest import Keyring, SecretsError
from paywire.webhooks.endpoint_secrets import config_aad, valid_secrets

log = logging.getLogger("paywire.webhooks")

d = webhook_deliveries
e = webhook_endpoints

MAX_ENDPOINTS_PER_CLAIM = 500  # more endpoints with due work are served by the next claims
# With more endpoints than that, a claim first probes which have due work (an index probe each),
# this many endpoints per statement, until it has found MAX_ENDPOINTS_PER_CLAIM of them.
ENDPOINTS_PROBED = 2000


@dataclass(slots=True)  # not frozen: a frozen dataclass takes three times as long to create
class Job:
    """One claimed delivery, with everything needed to send it (never changed once made)."""

    seq: int
    event_id: str
    endpoint_id: str
    livemode: bool
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempts: int  # attempts made before this one
    lease_until: float  # the claim is ours until then; never start a request that could outlast it
    type: str = "webhook"  # the destination's type (`paywire.destinations`)
    config: str | None = None  # its config (JSON, decrypted), for types other than webhook
    # When it became due: for a first attempt, when its event was written (the latency metric).
    due: float = 0.0
    event_type: str = ""  # the event's type (brokers route on it); "": read from the body


def _due(now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
    return sa.and_(
        d.c.status == "pending",
        d.c.next_attempt <= now,
        sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
    )


def still_leased(postgres: bool) -> sa.ColumnElement[bool]:
    """Deliveries `:seqs` (a `list_param`) still pending and leased to `:owner`, found by their key."""
    mine = sa.and_(d.c.lease_owner == sa.bindparam("owner"), d.c.status == "pending")
    return sa.and_(in_list(d.c.seq, "seqs", postgres), mine)


def _in_turn() -> sa.ColumnElement[bool]:
    """An unordered delivery, or the first pending one of its object (`order_key`) to its
    destination: the next goes only once the one before it succeeded or failed for good."""
    earlier = d.alias("earlier")
    waits = sa.exists().where(
        earlier.c.endpoint_id == d.c.endpoint_id,
        earlier.c.order_key == d.c.order_key,
        earlier.c.status == "pending",
        earlier.c.seq < d.c.seq,
    )
    return sa.or_(d.c.order_key.is_(None), ~waits)


def _due_to(endpoint_id: sa.ColumnElement[str], now: sa.ColumnElement[float], ordered: bool) -> sa.Select[Any]:
    """The due deliveries to `endpoint_id` while it is enabled, earliest first (`ordered`: only
    those in their turn)."""
    # Correlated to whatever holds `endpoint_id` (the endpoints asked, two levels out).
    still_enabled = sa.exists().where(e.c.id == endpoint_id, e.c.status == "enabled").correlate_except(e)
    conditions = [d.c.endpoint_id == endpoint_id, _due(now), still_enabled]
    if ordered:
        conditions.append(_in_turn())
    return sa.select(d.c.seq).where(*conditions).order_by(d.c.next_attempt)


def _asked_postgres() -> sa.TableValuedAlias:
    """The endpoints asked and their quotas: two arrays, `:ids` and `:quotas`, read side by side."""
    ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))
    quotas = sa.bindparam("quotas", type_=postgresql.ARRAY(sa.Integer))
    return sa.func.unnest(ids, quotas).table_valued("endpoint_id", "quota").render_derived(name="asked")


def _picked_postgres(now: sa.ColumnElement[float], ordered: bool) -> sa.Select[Any]:
    """PostgreSQL: per endpoint asked, a LATERAL read of its first `quota` due rows."""
    asked = _asked_postgres()
    # Rows another worker is claiming right now are skipped, not waited for, and the next ones
    # in the endpoint's range are taken instead.
    due = _due_to(asked.c.endpoint_id, now, ordered).limit(asked.c.quota).with_for_update(skip_locked=True)
    picked = due.lateral("picked")
    # Nothing else joined: the endpoints are read in the order given (see `claim_from`'s `covered`).
    return sa.select(picked.c.seq).select_from(asked).join(picked, sa.true())


def _picked_sqlite(now: sa.ColumnElement[float], ordered: bool, ranked: bool) -> sa.Select[Any]:
    """SQLite: per endpoint asked (`:asked`, a JSON object of endpoint id → quota), its first
    `quota` due rows. A LIMIT cannot name an outer column in SQLite: each endpoint's range is read
    up to `:most` (the largest quota asked) and, when the quotas differ (`ranked`), ranked, the
    ranks past its quota dropped (one endpoint, or a fan-out's idle ones, need no ranks)."""
    asked = sa.func.json_each(sa.bindparam("asked", type_=sa.String)).table_valued("key", "value", name="asked")
    first = _due_to(asked.c.key, now, ordered).limit(sa.bindparam("most", type_=sa.Integer))
    in_quota = first
    if ranked:
        rank = sa.func.row_number().over(order_by=d.c.next_attempt).label("rank")
        # A derived table that names the outer `asked` (SQLite allows it).
        ranks = first.add_columns(rank).correlate(asked).subquery("ranked")
        in_quota = sa.select(ranks.c.seq).where(ranks.c.rank <= asked.c.value).correlate(asked)
    picked = d.alias("picked")
    return sa.select(picked.c.seq).select_from(asked).join(picked, picked.c.seq.in_(in_quota))


@functools.cache
def _claim_statement(postgres: bool, ordered: bool = False, ranked: bool = False) -> sa.Update:
    """Lease due deliveries of the endpoints asked, each up to its quota, `:limit` in all
    (`ordered`: some of them have `ordering: per_object`, so each object's deliveries wait their turn).

    One statement whatever the number of endpoints: they and their quotas are parameters (see
    `_claim_params`, which also says whether SQLite must rank them: `ranked`). Each endpoint's
    rows are read through its own index range, and the claim re-checks that the endpoint is
    still enabled. Parameters besides: now, owner, until (the lease's end), limit.
    """
    now = sa.bindparam("now", type_=sa.Float)
    picked = _picked_postgres(now, ordered) if postgres else _picked_sqlite(now, ordered, ranked)
    # Materialized: evaluated once. PostgreSQL may otherwise re-run a LIMIT … SKIP LOCKED
    # subquery inside IN for every row, and take (and skip) far more rows than asked.
    limit = sa.bindparam("limit", type_=sa.Integer)
    due_rows = picked.limit(limit).cte("due").prefix_with("MATERIALIZED")
    return (
        d.update()
        # UPDATE … FROM, joined on the key alone: driven by the few picked rows (other
        # shapes let PostgreSQL, before ANALYZE has run, scan every due row first).
        .where(d.c.seq == due_rows.c.seq)
        .values(lease_owner=sa.bindparam("owner"), lease_until=sa.bindparam("until"))
        .returning(d.c.seq, d.c.event_id, d.c.endpoint_id, d.c.livemode, d.c.attempts, d.c.next_attempt)
    )


def _claim_params(quotas: Mapping[str, int], postgres: bool) -> tuple[dict[str, Any], bool]:
    """The endpoints asked (in the order given) and their quotas, as `_claim_statement` takes
    them, and whether its SQLite form must rank each endpoint's rows (the quotas differ)."""
    if postgres:
        return {"ids": list(quotas), "quotas": list(quotas.values())}, False
    most = max(quotas.values())
    return {"asked": json.dumps(quotas), "most": most}, any(quota < most for quota in quotas.values())


@functools.cache
def _probe_statement(postgres: bool) -> sa.Select[Any]:
    """Which of the endpoints `:ids` (in that order) have a due delivery: the first `:n` of them.

    One index probe per endpoint, in the order given, stopping once `:n` are found: a claim then
    asks only endpoints with work, however many enabled endpoints have none (fan-out: thousands
    of endpoints with one delivery each, most of them already drained).
    """
    now = sa.bindparam("now", type_=sa.Float)
    candidate = dialect.list_rows("ids", postgres)
    due = sa.exists().where(d.c.endpoint_id == candidate, _due(now))
    # No ORDER BY: the ids are read in the order given, and a sort would probe every one of them.
    return sa.select(candidate).where(due).limit(sa.bindparam("n", type_=sa.Integer))


@functools.cache
def _targets_statement(postgres: bool) -> sa.Select[Any]:
    """URL, secrets, type and config of the endpoints `:ids`."""
    return sa.select(e.c.id, e.c.url, e.c.secret, e.c.previous_secrets, e.c.type, e.c.config).where(
        in_list(e.c.id, "ids", postgres)
    )


@functools.cache
def _events_statement(postgres: bool) -> sa.Select[Any]:
    """The events `:ids`, ready for `render_json`."""
    return event_log.select_events_json().where(in_list(events.c.id, "ids", postgres))


@functools.cache
def _release_statement(postgres: bool) -> sa.Update:
    return d.update().where(still_leased(postgres)).values(lease_until=None, lease_owner=None)


async def enabled_endpoints(tx: Tx) -> list[str]:
    return list((await tx.conn.execute(sa.select(e.c.id).where(e.c.status == "enabled").order_by(e.c.seq))).scalars())


async def ordered_endpoints(tx: Tx) -> set[str]:
    """Enabled destinations with `ordering: per_object`."""
    query = sa.select(e.c.id).where(e.c.status == "enabled", e.c.ordering == "per_object")
    return set((await tx.conn.execute(query)).scalars())


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
    keyring: Keyring | None = None,
    ordered: Collection[str] | None = None,
) -> list[Job]:
    """`claim_from`, without where it got to."""
    jobs, _ = await claim_from(
        tx,
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        quotas=quotas,
        default_quota=default_quota,
        exclude=exclude,
        start=start,
        endpoints=endpoints,
        keyring=keyring,
        ordered=ordered,
    )
    return jobs


async def claim_from(
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
    keyring: Keyring | None = None,
    ordered: Collection[str] | None = None,
) -> tuple[list[Job], int]:
    """Lease up to `limit` due deliveries of enabled endpoints, at most a quota per endpoint.

    Each endpoint's due rows are read through its own index range, so one endpoint's backlog
    can neither fill the batch (fair claiming) nor make the claim slow when it is excluded
    (`exclude`: endpoints this dispatcher is not taking now, being full or backed off).
    `endpoints` is a recent list of enabled endpoints (read here if not given); the claim itself
    re-checks that each endpoint is still enabled.

    With more endpoints than one claim asks, the claim goes round the list: it starts at index
    `start`, first probes which endpoints from there have due work, and asks only those. Returns
    the jobs and how many of the list's endpoints, from `start` on, it has dealt with: the next
    claim starts after them (endpoints it did not get to are the next claim's first ones).

    `ordered`: which of them have `ordering: per_object` (read here if not given).

    The endpoints' secrets are decrypted with `keyring` (default: the database's), once per
    endpoint per claim and through its cache, so an unchanged secret is decrypted once at all.
    """
    if limit <= 0:
        return [], 0
    conn = tx.conn
    postgres = is_postgres(conn)
    enabled = list(endpoints) if endpoints is not None else await enabled_endpoints(tx)
    if not enabled:
        return [], 0
    first = start % len(enabled)
    rotated = enabled[first:] + enabled[:first]
    skip = set(exclude).union(endpoint_id for endpoint_id, quota in quotas.items() if quota <= 0)
    # Candidates (their index in `rotated`), found lazily: a claim reads only as far into the
    # list as it must, not every enabled endpoint in each turn (~5 ms a turn at 10,000).
    candidates = (
        index
        for index, endpoint_id in enumerate(rotated)
        if endpoint_id not in skip and (default_quota > 0 or endpoint_id in quotas)
    )
    found = list(itertools.islice(candidates, MAX_ENDPOINTS_PER_CLAIM + 1))
    if not found:
        return [], len(rotated)
    covered = len(rotated)  # unless enough endpoints with due work are found before the end
    if len(found) > MAX_ENDPOINTS_PER_CLAIM:
        found = await _probe(conn, now, rotated, itertools.chain(found, candidates))
        if len(found) >= MAX_ENDPOINTS_PER_CLAIM:
            covered = found[-1] + 1
    window = [rotated[index] for index in found]
    position = dict(zip(window, found, strict=True))  # window endpoint → its index in `rotated`
    if not window:
        return [], covered
    asked = {endpoint_id: min(quotas.get(endpoint_id, default_quota), limit) for endpoint_id in window}
    asked_params, ranked = _claim_params(asked, postgres)
    params = {"now": now, "owner": owner, "until": now + lease, "limit": limit, **asked_params}
    if ordered is None:
        ordered = await ordered_endpoints(tx)
    in_order = bool(ordered) and any(i in ordered for i in window)
    claimed = sorted(  # by seq: roughly the order the events were written
        # Plain tuples: a Row's attribute access costs more than the rest of building a Job.
        tuple(row)
        for row in await conn.execute(_claim_statement(postgres, in_order, ranked), params)
    )
    if not claimed:
        return [], covered
    if len(claimed) >= limit:
        # Cut short by `limit`: the window's endpoints after the last one served come first next.
        served = {endpoint_id for _, _, endpoint_id, *_ in claimed}
        covered = max(position[i] for i in window if i in served) + 1
    # Each endpoint and each event is read once, however many of the claimed rows share it.
    endpoint_ids = list({endpoint_id for _, _, endpoint_id, *_ in claimed})
    keys = keyring or tx.keyring
    targets = {}
    for row in await conn.execute(_targets_statement(postgres), {"ids": list_param(endpoint_ids, postgres)}):
        try:
            config = None if row.config is None else keys.decrypt_cached(row.config, config_aad(row.id))
            targets[row.id] = (row.url, tuple(valid_secrets(row._mapping, now, keys, cached=True)), row.type, config)
        except SecretsError as exc:
            # Not sent: its rows wait out their lease and are claimed again (by a process with
            # the key, or this one once configured); the other endpoints are not held up.
            log.error("webhook endpoint %s not delivered to: %s", row.id, exc)
    event_ids = list({event_id for _, event_id, *_ in claimed})
    bodies = {
        row.id: (event_log.render_json(row._mapping), row.type)
        for row in await conn.execute(_events_statement(postgres), {"ids": list_param(event_ids, postgres)})
    }
    jobs = []
    until = now + lease
    for seq, event_id, endpoint_id, livemode, attempts, due in claimed:
        target, event = targets.get(endpoint_id), bodies.get(event_id)
        # (An endpoint deleted meanwhile cannot be missing: deleting it waits on these rows'
        # locks to cancel them. Were one missing, its rows would just wait out their lease.)
        if target is not None and event is not None:
            url, secrets, kind, config = target
            body, event_type = event
            job = Job(seq, event_id, endpoint_id, livemode, url, secrets, body, attempts, until, kind, config, due)
            job.event_type = event_type
            jobs.append(job)
    return jobs, covered


async def _probe(conn: AsyncConnection, now: float, rotated: Sequence[str], candidates: Iterator[int]) -> list[int]:
    """Which `candidates` (indices into `rotated`) have due work: the first `MAX_ENDPOINTS_PER_CLAIM`.

    Probes a chunk at a time (a list of ids is a parameter to send), until enough are found. The
    first chunk is twice a claim's endpoints: after a fan-out's first claim, the endpoints right
    after the cursor are the ones with work (at 100 endpoints a claim, sending 2,000 ids to find
    the first 100 of them cost a turn more).
    """
    postgres = is_postgres(conn)
    found: list[int] = []
    size = 2 * MAX_ENDPOINTS_PER_CLAIM
    while len(found) < MAX_ENDPOINTS_PER_CLAIM and (chunk := list(itertools.islice(candidates, size))):
        ids = [rotated[index] for index in chunk]
        index_of = dict(zip(ids, chunk, strict=True))
        probe = {"now": now, "ids": list_param(ids, postgres), "n": MAX_ENDPOINTS_PER_CLAIM - len(found)}
        found += sorted(index_of[i] for i in (await conn.execute(_probe_statement(postgres), probe)).scalars())
        size = ENDPOINTS_PROBED
    return found


async def release(tx: Tx, owner: str, seqs: Collection[int]) -> None:
    """Give back leased rows that were never sent (a clean shutdown), so others take them at once."""
    if seqs:
        postgres = is_postgres(tx.conn)
        await tx.conn.execute(_release_statement(postgres), {"seqs": list_param(seqs, postgres), "owner": owner})


async def _wake_workers(tx: Tx) -> None:
    """Deliveries became due: wake dispatchers once this commits (other processes via NOTIFY)."""
    await dialect.notify(tx.conn, CHANNEL)


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
        # A resend to a per_object destination queues behind that object's pending deliveries.
        ordered = set(
            (await tx.conn.execute(sa.select(e.c.id).where(e.c.id.in_(new), e.c.ordering == "per_object"))).scalars()
        )
        object_id = None
        if ordered:
            object_id = await tx.conn.scalar(sa.select(events.c.object_id).where(events.c.id == event_id))
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
                    "order_key": object_id if endpoint_id in ordered else None,
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


async def resend(tx: Tx, event_id: str, endpoint_id: str | None, *, livemode: bool, now: float) -> list[str]:
    """Queue the event again now: to one enabled endpoint, or to every enabled endpoint that
    matches its type. Returns the endpoints it was queued to (the API and the dashboard call this)."""
    row = await event_log.get(tx.conn, event_id, livemode)
    if row is None:
        raise NotFound(f"no such event: {event_id!r}", param="id")
    if endpoint_id is None:
        targets = await matching_endpoints(tx, row.type, livemode=livemode)
    else:
        endpoint = await objects.fetch(tx.conn, webhook_endpoints, endpoint_id, livemode)
        if endpoint["status"] != "enabled":
            raise StateError(
                f"webhook endpoint {endpoint_id!r} is disabled; enable it first", param="webhook_endpoint_id"
            )
        targets = [endpoint_id]
    await enqueue(tx, event_id, targets, livemode=livemode, now=now)
    return targets

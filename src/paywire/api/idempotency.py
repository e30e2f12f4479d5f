"""The `Idempotency-Key` store: claims, the mark that a request wrote, and how it ended.

Idempotency follows Stripe: the first response to a key is stored and returned again for the
same key and request; the same key with another request is a 409, and so is a retry while the
first is still running. The key is marked "committed" inside the request's own write
transaction (`mark_committed`), so whether the write happened is never in doubt: a request that
wrote nothing and failed (5xx, crash) forgets the key and its retry runs for real; one that
wrote and then lost its response answers 409 `idempotency_key_response_lost` rather than
writing twice. A key left "started" by a crashed process is taken over after `ABANDONED_AFTER`
seconds.

Each claim is one row version, `(seq, created)`: marking it committed and recording its end
touch only that version, and marking it committed fails (rolling the write back) if the key
was taken over meanwhile, so a slow first request and its take-over never both write.

If recording an end fails on an outage, this process keeps that end and records it as soon as
the database is back (in the background, and first thing when the same key comes again), so a
retry after a 5xx that wrote nothing runs for real instead of meeting `idempotency_key_in_use`
until the key is abandoned.

First uses and ends are written by group commit (`db.group_commit`): those of the requests
arriving while one such transaction runs share the next, each request awaiting its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db import dialect
from paywire.db.engine import Database, outage
from paywire.db.group_commit import GroupCommit
from paywire.db.schema import idempotency_keys as table
from paywire.errors import IdempotencyConflict, PaywireError
from paywire.secrets_at_rest import Keyring

ABANDONED_AFTER = 60

log = logging.getLogger("paywire.api")


class Claim(NamedTuple):
    """The row version a request claimed: only it may be marked committed or finished."""

    seq: int
    created: int


@dataclass
class Ended:
    """How a claimed request ended; kept when it could not be recorded, to record it later."""

    claim: Claim
    status: int
    body: bytes
    at: float
    recording: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer at a time
    recorded: bool = False


class _FirstUse(NamedTuple):
    livemode: bool
    key: str
    request_hash: str
    created: int


class IdempotencyStore:
    """One per process (the middleware's): it groups the commits of concurrent requests."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring
        self._first_uses: GroupCommit[_FirstUse, int | None] = GroupCommit(db, _insert_claims)
        self._ends: GroupCommit[Ended, None] = GroupCommit(db, lambda conn, ends: _write_ends(conn, ends, keyring))
        self._unrecorded: dict[tuple[bool, str], Ended] = {}
        self._recorder: asyncio.Task[None] | None = None

    async def claim(self, livemode: bool, key: str, digest: str) -> Claim | tuple[int, bytes] | PaywireError:
        """The claim to run the request under, a stored (status, body) to replay, or an error to answer."""
        await self._record_earlier(livemode, key)
        now = int(time.time())
        # A key's first use (the usual case) is committed with the first uses of the requests
        # claiming meanwhile; one met on PostgreSQL while uncommitted is waited for.
        seq = await self._first_uses(_FirstUse(livemode, key, digest, now))
        if seq is not None:
            return Claim(seq, now)
        async with self.db.transaction() as tx:
            row = (
                await tx.conn.execute(
                    sa.select(table).where(table.c.livemode == livemode, table.c.key == key).with_for_update()
                )
            ).first()
            if row is None:  # forgotten (a 5xx) since the insert met it
                return _in_use()
            if row.request_hash != digest:
                return IdempotencyConflict(
                    "this Idempotency-Key was used with a different request", param="Idempotency-Key"
                )
            if row.state == "done":
                stored = self.keyring.decrypt(row.response_body or "", _body_aad(int(row.seq)))
                return int(row.response_status), stored.encode()
            if row.state == "committed" and now - row.created >= ABANDONED_AFTER:
                return IdempotencyConflict(
                    "the first request with this Idempotency-Key was carried out, but its response was "
                    "lost; look up the result instead of retrying",
                    param="Idempotency-Key",
                    code="idempotency_key_response_lost",
                )
            if now - row.created < ABANDONED_AFTER:
                return _in_use()
            await tx.conn.execute(table.update().where(table.c.seq == row.seq).values(created=now))
            return Claim(int(row.seq), now)

    @staticmethod
    async def mark_committed(conn: AsyncConnection, claim: Claim) -> None:
        """Inside the request's own write transaction: the key is "committed" if and only if the
        write is, so a crash before its end is recorded can never lead to the write running twice."""
        marked = await conn.execute(_MARK_COMMITTED, {"claim_seq": claim.seq, "claim_created": claim.created})
        if marked.rowcount != 1:  # taken over (abandoned) meanwhile: the take-over writes, not us
            raise IdempotencyConflict(
                "a later request with this Idempotency-Key took it over; nothing was written",
                param="Idempotency-Key",
                code="idempotency_key_in_use",
            )

    async def end(self, livemode: bool, key: str, ended: Ended) -> None:
        """Record how the claimed request ended; on an outage keep it and record it later. Never
        raises: the answer is made already."""
        try:
            await self._ends(ended)
        except Exception as exc:
            if outage(exc) is None:
                log.exception("could not record the end of an Idempotency-Key request")
            else:  # record it once the database is back
                log.warning("could not record the end of an Idempotency-Key request (%s); will retry", exc)
                self._unrecorded[livemode, key] = ended
                self._start_recorder()

    async def _record_earlier(self, livemode: bool, key: str) -> None:
        """A request with this key ended here but its end is not recorded yet: record it now
        (or wait for the recorder doing it), so the claim that follows sees it."""
        ended = self._unrecorded.get((livemode, key))
        if ended is not None:
            await self._record((livemode, key), ended)

    async def _record(self, name: tuple[bool, str], ended: Ended) -> None:
        async with ended.recording:
            if not ended.recorded:
                await self._ends(ended)
                ended.recorded = True
        if self._unrecorded.get(name) is ended:
            del self._unrecorded[name]

    def _start_recorder(self) -> None:
        if self._recorder is None or self._recorder.done():
            # A context of its own: nothing of the request (its before-commit hook) leaks into it.
            self._recorder = asyncio.get_running_loop().create_task(
                self._record_unrecorded(), context=contextvars.Context()
            )

    async def _record_unrecorded(self) -> None:
        """Retry recording the ends that failed to write, with back-off, until none is left.

        After `ABANDONED_AFTER` an end is dropped: by then a retry may have taken the key over
        (and a late write would not touch the take-over's row version anyway).
        """
        delay = 0.1
        while self._unrecorded:
            await asyncio.sleep(delay)
            failed = False
            for name, ended in list(self._unrecorded.items()):
                if time.monotonic() - ended.at >= ABANDONED_AFTER:
                    if self._unrecorded.get(name) is ended:
                        del self._unrecorded[name]
                    continue
                try:
                    await self._record(name, ended)
                except Exception:
                    failed = True
                    break
            delay = min(delay * 2, 2.0) if failed else 0.1


async def _insert_claims(conn: AsyncConnection, uses: list[_FirstUse]) -> list[int | None]:
    """Each key's claim as a first use (its row's seq), or None where the key has a row already.

    One statement for the whole batch, its rows in key order so that two processes' batches
    wait on each other's keys in the same order (never a deadlock). A key twice in the batch is
    claimed once."""
    first = {(use.livemode, use.key): use for use in reversed(uses)}  # the earliest of a key's uses
    rows = [{**first[name]._asdict(), "state": "started"} for name in sorted(first)]
    inserted = await conn.execute(
        dialect.insert_for(table, dialect.is_postgres(conn))
        .values(rows)
        .on_conflict_do_nothing(index_elements=[table.c.livemode, table.c.key])
        .returning(table.c.seq, table.c.livemode, table.c.key)
    )
    claimed = {(row.livemode, row.key): int(row.seq) for row in inserted}
    return [claimed.pop((use.livemode, use.key), None) for use in uses]


_MINE = sa.and_(table.c.seq == sa.bindparam("claim_seq"), table.c.created == sa.bindparam("claim_created"))
_DONE = table.update().values(state="done", response_status=sa.bindparam("status"), response_body=sa.bindparam("body"))
_RECORD_END = _DONE.where(_MINE)
_RECORD_COMMITTED_END = _DONE.where(_MINE, table.c.state == "committed")
# Built once: building it per request was 5 % of a keyed request's CPU (py-spy, PostgreSQL).
_MARK_COMMITTED = table.update().where(_MINE, table.c.state.in_(("started", "committed"))).values(state="committed")
_FORGET_UNWRITTEN = table.delete().where(_MINE, table.c.state == "started")


async def _write_ends(conn: AsyncConnection, ends: list[Ended], keyring: Keyring) -> list[None]:
    """Each end on its own row version only: a 5xx forgets a key whose request wrote nothing (so
    the client's retry runs for real) and stores the answer of one that did."""
    answered = [_end_row(ended, keyring) for ended in ends if ended.status < 500]
    failed = [_end_row(ended, keyring) for ended in ends if ended.status >= 500]
    if answered:
        await conn.execute(_RECORD_END, answered)
    if failed:
        await conn.execute(_FORGET_UNWRITTEN, failed)
        await conn.execute(_RECORD_COMMITTED_END, failed)
    return [None] * len(ends)


def _end_row(ended: Ended, keyring: Keyring) -> dict[str, object]:
    return {
        "claim_seq": ended.claim.seq,
        "claim_created": ended.claim.created,
        "status": ended.status,
        # Encrypted at rest like the secrets themselves: a create or rotate-secret answer holds one.
        "body": keyring.encrypt(ended.body.decode("utf-8", "replace"), _body_aad(ended.claim.seq)),
    }


def _in_use() -> IdempotencyConflict:
    return IdempotencyConflict(
        "a request with this Idempotency-Key is still in progress; retry later",
        param="Idempotency-Key",
        code="idempotency_key_in_use",
    )


def _body_aad(seq: int) -> str:
    return f"idempotency_keys.response_body:{seq}"

"""Retention (`paywire.ops.retention`), `paywire prune` and `paywire export`, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from paywire.app import PaywireApp
from paywire.db.engine import Database
from paywire.db.schema import events, idempotency_keys, webhook_attempts, webhook_deliveries
from paywire.events import log as event_log
from paywire.events.bus import EventBus
from paywire.events.event import Event
from paywire.events.local import LocalSource, store_position
from paywire.ids import new_id
from paywire.ops import export as exporting
from paywire.ops import retention
from paywire.ops.retention import Policy, prune
from tests.conftest import Server, start_server, stop_server
from tests.integration.test_stream import _messages, _take

DAY = 86_400
NOW = time.time()
OLD = NOW - 40 * DAY


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[PaywireApp]:
    paywire = PaywireApp(database_url, run_worker=False)
    async with paywire.running():
        yield paywire


async def _events(db: Database, n: int, *, at: float, type: str = "customer.created") -> list[str]:
    async with db.transaction() as tx:
        new = [event_log.NewEvent(type, {"id": new_id("cus"), "name": f"c{i}"}) for i in range(n)]
        rendered = await event_log.append(tx, new, livemode=False, now=at)
    return [e["id"] for e in rendered]


async def _delivery(db: Database, event_id: str, *, status: str, at: float, attempts: int = 1) -> None:
    async with db.transaction() as tx:
        row = {
            "event_id": event_id,
            "endpoint_id": "we_x",
            "livemode": False,
            "status": status,
            "attempts": attempts,
            "next_attempt": at + 3600,
            "created": int(at),
            "updated": int(at),
        }
        key = (await tx.conn.execute(webhook_deliveries.insert().values(**row))).inserted_primary_key
        assert key is not None
        seq = key[0]
        await tx.conn.execute(
            webhook_attempts.insert().values(
                id=new_id("wha"),
                livemode=False,
                delivery_seq=seq,
                event_id=event_id,
                endpoint_id="we_x",
                status="succeeded" if status == "succeeded" else "failed",
                retry_count=attempts - 1,
                duration_ms=5,
                created=at,
            )
        )


async def _key(db: Database, key: str, *, at: float) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(
            idempotency_keys.insert().values(
                livemode=False, key=key, request_hash="h" * 64, state="done", created=int(at)
            )
        )


async def _ids(db: Database, column: Any) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(column).order_by(column))).scalars())


async def test_old_finished_rows_go_pending_and_retrying_ones_stay(app: PaywireApp) -> None:
    db = app.db
    done, retrying, queued, bare = (await _events(db, 1, at=OLD))[0], *await _events(db, 3, at=OLD)
    young = (await _events(db, 1, at=NOW))[0]
    await _delivery(db, done, status="succeeded", at=OLD)
    await _delivery(db, retrying, status="pending", at=OLD, attempts=3)  # retrying: failed before
    await _delivery(db, queued, status="pending", at=OLD, attempts=0)
    await _delivery(db, young, status="succeeded", at=NOW)
    await _key(db, "old", at=NOW - 2 * DAY)
    await _key(db, "new", at=NOW - 3600)

    result = await prune(db, Policy(pause=0), now=NOW)

    assert sorted(await _ids(db, events.c.id)) == sorted([retrying, queued, young])
    async with db.read() as conn:
        deliveries = (await conn.execute(sa.select(webhook_deliveries.c.event_id, webhook_deliveries.c.status))).all()
    assert sorted(deliveries) == sorted([(retrying, "pending"), (queued, "pending"), (young, "succeeded")])
    assert await _ids(db, webhook_attempts.c.event_id) == [young]  # attempts are logs: by age alone
    assert await _ids(db, idempotency_keys.c.key) == ["new"]
    assert result.removed == {"attempts": 3, "deliveries": 1, "events": 2, "idempotency_keys": 1}
    assert bare not in await _ids(db, events.c.id)
    # A second run finds nothing more; the kept events still render with their pending deliveries.
    assert (await prune(db, Policy(pause=0), now=NOW)).total == 0
    async with db.read() as conn:
        row = await event_log.get(conn, retrying, False)
    assert row is not None and event_log.render(row)["pending_webhooks"] == 1


async def test_batches_are_bounded(app: PaywireApp) -> None:
    """Each batch is one short write transaction: a scan, a delete of at most batch_size rows."""
    db = app.db
    await _events(db, 35, at=OLD)
    await _events(db, 3, at=NOW)
    transactions: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []

    scans: list[str] = []

    def after_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        current.append((statement.split()[0].upper(), cursor.rowcount))
        if "FROM events" in statement and statement.lstrip().upper().startswith("SELECT"):
            scans.append(statement)

    def on_commit(conn: Any) -> None:
        transactions.append(list(current))
        current.clear()

    def on_rollback(conn: Any) -> None:
        current.clear()

    engine = db.engine.sync_engine
    sa_event.listen(engine, "after_cursor_execute", after_execute)
    sa_event.listen(engine, "commit", on_commit)
    sa_event.listen(engine, "rollback", on_rollback)
    try:
        result = await prune(db, Policy(batch_size=10, pause=0), now=NOW, kinds=["events"])
    finally:
        sa_event.remove(engine, "after_cursor_execute", after_execute)
        sa_event.remove(engine, "commit", on_commit)
        sa_event.remove(engine, "rollback", on_rollback)
    assert result.removed["events"] == 35
    deleting = [t for t in transactions if any(kind == "DELETE" for kind, _ in t)]
    assert len(deleting) >= 4  # 10 + 10 + 10 + 5 (smaller when a batch is slow)
    assert sum(rows for t in deleting for kind, rows in t if kind == "DELETE") == 35
    for statements in deleting:
        assert len(statements) <= 4, statements  # (lock,) scan, delete, and nothing else
        assert all(rows <= 10 for kind, rows in statements if kind == "DELETE")
    assert len(await _ids(db, events.c.seq)) == 3
    # where a batch ends is one aggregate over its rows, not the rows walked in Python
    assert scans and all("count(*)" in scan.lower() and "min(" in scan.lower() for scan in scans), scans


@pytest.mark.parametrize("size", [10, 3])  # the young row inside the first batch, or a later one
async def test_the_run_stops_at_the_first_young_event_even_mid_batch(app: PaywireApp, size: int) -> None:
    """Old rows after a young one (out of order) are left for a later run: no batch looks past it."""
    db = app.db
    await _events(db, 5, at=OLD)
    young = await _events(db, 1, at=NOW)
    later = await _events(db, 4, at=OLD)
    result = await prune(db, Policy(batch_size=size, pause=0), now=NOW, kinds=["events"])
    assert result.removed["events"] == 5
    async with db.read() as conn:
        kept = list((await conn.execute(sa.select(events.c.id).order_by(events.c.seq))).scalars())
    assert kept == young + later


async def test_a_durable_consumer_keeps_its_events_and_resumes_across_a_pruned_range(app: PaywireApp) -> None:
    db = app.db
    old = await _events(db, 10, at=OLD)
    young = await _events(db, 2, at=NOW)
    async with db.read() as conn:
        at = await event_log.seq_of(conn, old[5], None)
    assert at is not None
    await store_position(db, "books", None, at, old[5], NOW)

    result = await prune(db, Policy(pause=0), now=NOW)
    assert result.removed["events"] == 5 and result.consumer_floor == at
    assert set(await _ids(db, events.c.id)) == set(old[5:] + young)

    # The bus resumes right after its position (whose event is kept), everything after it arrives.
    bus = EventBus(LocalSource(db), name="books")
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.id))
    await bus.start()
    for _ in range(200):
        if len(seen) == 6:
            break
        await _sleep()
    await bus.stop()
    assert seen == old[6:] + young

    # A position *inside* the pruned range still resumes (by seq): the next event on.
    source = LocalSource(db)
    stream = cast(AsyncGenerator[tuple[int, Event]], source.events(1).__aiter__())
    first_seq, first = await stream.__anext__()
    assert first.id == old[5] and first_seq == at
    await stream.aclose()


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.02)


async def test_sse_resume_from_a_consumers_position_after_pruning(database_url: str) -> None:
    paywire = PaywireApp(database_url, run_worker=False)
    uv, task, url = await start_server(paywire)
    try:
        from tests.conftest import new_key

        server = Server(paywire, url, await new_key(paywire), await new_key(paywire, live=True))
        old = await _events(paywire.db, 4, at=OLD)
        young = await _events(paywire.db, 2, at=NOW)
        async with server.client() as api:
            # A remote named consumer saved its position at old[2] (PUT, by event id).
            saved = await api.put("/api/event-consumers/remote", json={"last_event_id": old[2]})
            assert saved.status_code == 200, saved.text
            assert (await prune(paywire.db, Policy(pause=0), now=NOW)).removed["events"] == 2
            assert (await api.get(f"/api/events/{old[1]}")).status_code == 404
            position = (await api.get("/api/event-consumers/remote")).json()["last_event_id"]
            assert position == old[2]
            stream = _messages(api, params={"after": position})
            got = await _take(stream, 4)
            await stream.aclose()
        assert got[0] == ("ready", {"last_event_id": old[2]})
        assert [m["id"] for _, m in got[1:]] == [old[3], *young]
    finally:
        await stop_server(uv, task)


async def test_dry_run_changes_nothing(app: PaywireApp) -> None:
    db = app.db
    ids = await _events(db, 7, at=OLD)
    await _delivery(db, ids[0], status="failed", at=OLD)
    await _key(db, "k", at=OLD)
    before = [await _ids(db, t.c.seq) for t in (events, webhook_deliveries, webhook_attempts, idempotency_keys)]
    result = await prune(db, Policy(batch_size=3, pause=0), now=NOW, dry_run=True)
    after = [await _ids(db, t.c.seq) for t in (events, webhook_deliveries, webhook_attempts, idempotency_keys)]
    assert before == after
    assert result.removed == {"attempts": 1, "deliveries": 1, "events": 7, "idempotency_keys": 1}
    assert (await prune(db, Policy(pause=0), now=NOW)).removed == result.removed


async def test_the_archive_holds_the_pruned_events_as_rendered(app: PaywireApp, tmp_path: Path) -> None:
    db = app.db
    old = await _events(db, 5, at=OLD)
    kept = await _events(db, 1, at=OLD)
    await _delivery(db, kept[0], status="pending", at=OLD)
    async with db.read() as conn:
        expected = [event_log.render(await event_log.get(conn, i, False)) for i in old]
    result = await prune(db, Policy(pause=0, batch_size=2, archive_dir=tmp_path / "arch"), now=NOW)
    assert result.removed["events"] == 5
    [path] = sorted((tmp_path / "arch").iterdir())
    assert path.name == retention.archive_name(int(OLD))
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    assert lines == expected
    assert await _ids(db, events.c.id) == kept


async def test_export_writes_the_range_in_order_filtered_by_type(app: PaywireApp, tmp_path: Path) -> None:
    db = app.db
    t0 = int(NOW) - 10 * DAY
    before = await _events(db, 2, at=t0 - 1)
    inside = await _events(db, 3, at=t0)
    other = await _events(db, 2, at=t0 + 5, type="product.created")
    inside += await _events(db, 2, at=t0 + DAY)
    after = await _events(db, 2, at=t0 + 2 * DAY)
    assert before and after
    lines: list[bytes] = []
    written = await exporting.export(db, lines.append, t0, t0 + 2 * DAY, "customer.created", page=2)
    got = [json.loads(line) for chunk in lines for line in chunk.splitlines()]
    async with db.read() as conn:
        expected = [event_log.render(await event_log.get(conn, i, False)) for i in inside]
    assert written == 5 and got == expected
    both: list[bytes] = []
    await exporting.export(db, both.append, t0, t0 + 2 * DAY, "*", page=3)
    assert len(b"".join(both).splitlines()) == 7
    prefix: list[bytes] = []
    await exporting.export(db, prefix.append, t0, t0 + 2 * DAY, "product.*")
    assert [json.loads(x)["id"] for x in b"".join(prefix).splitlines()] == other
    assert await exporting.count(db, t0, t0 + 2 * DAY) == 7


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paywire.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")},
    )


async def test_prune_and_export_commands(app: PaywireApp, database_url: str, tmp_path: Path) -> None:
    db = app.db
    old = await _events(db, 4, at=OLD)
    young = await _events(db, 1, at=NOW)
    out = tmp_path / "out.jsonl"
    exported = _cli(
        "export",
        "--since",
        "2000-01-01",
        "--until",
        str(int(NOW) + 60),
        "--output",
        str(out),
        "--database-url",
        database_url,
        cwd=tmp_path,
    )
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == old + young
    assert "exported 5 events" in exported.stderr

    dry = _cli("prune", "--dry-run", "--database-url", database_url, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would be removed" in dry.stderr and len(await _ids(db, events.c.seq)) == 5
    done = _cli("prune", "--database-url", database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert await _ids(db, events.c.id) == young

    bad = _cli("export", "--since", "tomorrow", "--until", "2030-01-01", "--database-url", database_url, cwd=tmp_path)
    assert bad.returncode == 2 and "unix seconds" in bad.stderr


async def test_the_worker_prunes_on_start(database_url: str) -> None:
    """`PaywireApp(run_worker=True)` runs the Retention service: it prunes when it starts."""
    setup = PaywireApp(database_url, run_worker=False)
    async with setup.running():
        old = await _events(setup.db, 3, at=OLD)
        young = await _events(setup.db, 1, at=NOW)
    assert old
    paywire = PaywireApp(database_url)
    async with paywire.running():
        service = next(s for s in paywire.background if isinstance(s, retention.Retention))
        for _ in range(250):
            if service.last is not None:
                break
            await _sleep()
        assert service.last is not None and service.last.removed["events"] == 3
        assert await _ids(paywire.db, events.c.id) == young
    assert service._task is None  # stopped with the app

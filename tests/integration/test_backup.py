"""`paywire backup`: a consistent SQLite copy taken while the API takes writes; restored, it holds
every event committed before the copy began, and each customer with its event."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from paywire.app import PaywireApp
from paywire.db.schema import customers, events
from tests.conftest import Server, new_key, start_server, stop_server

PAYWIRE = [sys.executable, "-m", "paywire.cli.main"]


async def test_backup_under_load_restores_every_committed_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    app = PaywireApp(url, run_worker=False)
    uv, task, base = await start_server(app)
    server = Server(app, base, await new_key(app), await new_key(app, live=True))
    created: list[str] = []
    stop = asyncio.Event()

    async def writer() -> None:
        async with server.client() as api:
            while not stop.is_set():
                answer = await api.post("/api/customers", json={"email": f"c{len(created)}@example.com"})
                assert answer.status_code == 200, answer.text
                created.append(answer.json()["id"])

    writing = asyncio.create_task(writer())
    try:
        while len(created) < 50:
            await asyncio.sleep(0.05)
        before = list(created)  # all of these committed before the copy starts
        target = tmp_path / "backup.db"
        result = await asyncio.to_thread(
            subprocess.run, [*PAYWIRE, "backup", str(target), "--database-url", url], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        while len(created) < len(before) + 20:  # the API kept writing during and after the copy
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await writing
        await stop_server(uv, task)

    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copied_customers = {row[0] for row in copy.execute("SELECT id FROM customers")}
        with_events = {row[0] for row in copy.execute("SELECT object_id FROM events WHERE type = 'customer.created'")}
    assert set(before) <= copied_customers
    assert copied_customers == with_events  # one consistent state: no customer without its event
    assert len(copied_customers) < len(created)  # and not a copy of the later state

    restored = PaywireApp(f"sqlite:///{target}", run_worker=False)
    async with restored.running(), restored.db.read() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(customers))
        event_count = await conn.scalar(sa.select(sa.func.count()).select_from(events))
    assert count == len(copied_customers) and event_count is not None and event_count >= count


def test_backup_refuses_postgres_and_an_existing_file(tmp_path: Path) -> None:
    pg = subprocess.run(
        [*PAYWIRE, "backup", str(tmp_path / "x.db"), "--database-url", "postgresql://u@127.0.0.1/db"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert pg.returncode == 1 and "pg_dump" in pg.stderr
    existing = tmp_path / "exists.db"
    existing.write_text("")
    src = tmp_path / "src.db"
    sqlite3.connect(src).close()
    again = subprocess.run(
        [*PAYWIRE, "backup", str(existing), "--database-url", f"sqlite:///{src}"], capture_output=True, text=True
    )
    assert again.returncode == 1 and "exists already" in again.stderr

"""`paywire prune` and `paywire export`: the database work behind the two commands.

Progress bars go to stderr, so `paywire export > events.jsonl` gets only the events on stdout.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paywire.db.engine import Database
from paywire.ops import export as exporting
from paywire.ops import retention
from paywire.settings import Settings

err = Console(stderr=True)

_LABELS = {
    "attempts": "webhook attempts",
    "deliveries": "webhook deliveries",
    "events": "events",
    "idempotency_keys": "idempotency keys",
}


def parse_time(value: str) -> int:
    """Unix seconds, an ISO date (`2026-11-01`, midnight UTC) or datetime (UTC unless it says)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r}: use unix seconds, 2026-11-01 or 2026-11-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def prune(settings: Settings, *, dry_run: bool) -> retention.Result:
    policy = retention.Policy.from_settings(settings)

    async def run() -> retention.Result:
        db = Database(settings.database_url, pool_size=2)
        try:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                verb = "counting" if dry_run else "removing"
                tasks = {k: bar.add_task(f"{verb} {_LABELS[k]}", total=None, rows=0) for k in retention.KINDS}

                def progress(kind: str, rows: int) -> None:
                    bar.update(tasks[kind], rows=rows, advance=1)

                result = await retention.prune(db, policy, dry_run=dry_run, progress=progress)
        finally:
            await db.dispose()
        return result

    result = asyncio.run(run())
    table = Table(title="would be removed (dry run)" if dry_run else "removed", title_justify="left")
    table.add_column("kind")
    table.add_column("rows", justify="right")
    table.add_column("older than (days)", justify="right")
    days = {
        "attempts": policy.attempts_days,
        "deliveries": policy.events_days,
        "events": policy.events_days,
        "idempotency_keys": policy.idempotency_days,
    }
    for kind in retention.KINDS:
        table.add_row(_LABELS[kind], f"{result.removed[kind]:,}", f"{days[kind]:g}")
    err.print(table)
    if result.consumer_floor is not None:
        err.print(f"events from seq {result.consumer_floor} on are kept for a durable EventBus consumer")
    for path in result.archived:
        err.print(f"archived to {path}")
    return result


def export(
    database_url: str, since: str, until: str, type: str | None, output: Path | None, *, quiet: bool = False
) -> int:
    start, end = parse_time(since), parse_time(until)
    if end <= start:
        raise ValueError("--until must be after --since")

    async def run(out: BinaryIO) -> int:
        db = Database(database_url, pool_size=2)
        try:
            total = await exporting.count(db, start, end, type)
            with Progress(
                TextColumn("exporting events"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=quiet,
            ) as bar:
                task = bar.add_task("export", total=total)
                return await exporting.export(
                    db, out.write, start, end, type, progress=lambda done: bar.update(task, completed=done)
                )
        finally:
            await db.dispose()

    if output is None:
        written = asyncio.run(run(sys.stdout.buffer))
        sys.stdout.buffer.flush()
    else:
        with open(output, "wb") as out:
            written = asyncio.run(run(out))
    err.print(f"exported {written:,} events" + (f" to {output}" if output else ""))
    return written

"""`paywire backup PATH`: a consistent copy of a SQLite database, taken while Paywire runs.

SQLite's online backup API copies the database page by page under a read snapshot, so writers
keep going (WAL mode) and the copy is one consistent state: every transaction committed before
the copy's snapshot, none after. PostgreSQL is backed up with its own tools (`pg_dump`); see
docs/deployment.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

PAGES_PER_STEP = 1024  # pages copied between lock releases, so writers are never held for long


class BackupError(Exception):
    pass


def sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError("paywire backup copies a SQLite database file; back up PostgreSQL with pg_dump")
    return Path(url.database)


def backup_sqlite(database_url: str, target: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Copy the database to `target` (which must not exist yet); returns the pages copied."""
    source_path = sqlite_path(database_url)
    if not source_path.is_file():
        raise BackupError(f"no database at {str(source_path)!r}")
    if target.exists():
        raise BackupError(f"{str(target)!r} exists already; choose a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(partial)
    copied = 0

    def step(_status: int, remaining: int, total: int) -> None:
        nonlocal copied
        copied = total - remaining
        if progress is not None:
            progress(copied, total)

    try:
        source.backup(copy, pages=PAGES_PER_STEP, progress=step)
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        check = copy.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"the copy failed its integrity check: {check}")
    finally:
        copy.close()
        source.close()
    partial.rename(target)  # only a complete, checked copy ever has the target's name
    return copied

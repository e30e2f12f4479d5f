"""The database behind one small interface; every SQLite/PostgreSQL difference lives here.

SQLite has one writer at a time: WAL, a busy timeout and `BEGIN IMMEDIATE` for write transactions
(so two processes never deadlock upgrading a read lock), plus an in-process lock so this
process's own writers queue on the event loop instead of spinning in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from paywire.config import default_database_url
from paywire.db import sqlite
from paywire.db.signal import PostgresListener, Signal

__all__ = ["Database", "Tx", "async_url", "default_database_url", "is_unavailable"]


def async_url(url: str) -> str:
    """`postgresql://…` → asyncpg, `sqlite:///…` → aiosqlite; other drivers are refused clearly."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {parsed.drivername!r}: use sqlite:///path or postgresql://…")


# JSON columns are stored compact: smaller rows, and the text the webhook bodies splice in.
_json_serializer = functools.partial(json.dumps, separators=(",", ":"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own handling is broken).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get("paywire_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _quiet_driver_log(name: str) -> None:
    """A driver that logs every statement with its parameters at DEBUG would write endpoint
    secrets to the log of an operator who turned DEBUG on globally: keep it at INFO unless
    the operator configured that logger by name. (SQL errors and SQLAlchemy's own logs never
    show parameters either: `hide_parameters=True`.)"""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


# Work to do inside every write transaction of the current context, just before it commits.
# The API uses it to mark a request's Idempotency-Key as committed atomically with its writes.
before_commit: ContextVar[Callable[[AsyncConnection], Awaitable[None]] | None] = ContextVar(
    "paywire_before_commit", default=None
)


@dataclass
class Tx:
    """An open write transaction: the connection, and what to do once it commits."""

    conn: AsyncConnection
    after_commit: list[Any] = field(default_factory=list)
    events_appended: bool = False


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        sa_url = make_url(async_url(url))
        self.dialect = "sqlite" if sa_url.get_backend_name() == "sqlite" else "postgresql"
        if self.dialect == "sqlite":
            database = sa_url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            _quiet_driver_log("aiosqlite")
            self.engine: AsyncEngine = create_async_engine(
                sa_url, pool_size=pool_size, max_overflow=0, hide_parameters=True, json_serializer=_json_serializer
            )
            sa_event.listen(self.engine.sync_engine, "do_connect", sqlite.use_buffered_cursors)
            sa_event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            sa_event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            self.engine = create_async_engine(
                sa_url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                hide_parameters=True,
                json_serializer=_json_serializer,
            )
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self.signal = Signal()
        self._listener: PostgresListener | None = None

    async def start_listening(self) -> None:
        """Wake this process's waiters on other processes' commits (PostgreSQL only)."""
        if self.is_postgres and self._listener is None:
            dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
            self._listener = PostgresListener(dsn, self.signal)
            self._listener.start()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction; callbacks in `tx.after_commit` run only once it has committed."""
        async with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
            await conn.execution_options(paywire_write=True)
            tx = Tx(conn)
            async with conn.begin():
                yield tx
                hook = before_commit.get()
                if hook is not None:
                    await hook(conn)
        if tx.events_appended:
            self.signal.notify()
        for callback in tx.after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (one consistent snapshot on both databases)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await self.engine.dispose()


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database is unreachable (restart, terminated connection)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return "locked" not in str(exc)
    return isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError))

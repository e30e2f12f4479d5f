"""The database behind one small interface: connections, transactions and outages on SQLite and
PostgreSQL. What a query needs to differ between the two is in `dialect.py`.

SQLite has one writer at a time: WAL, a busy timeout and `BEGIN IMMEDIATE` for write transactions
(so two processes never deadlock upgrading a read lock), plus an in-process lock so this
process's own writers queue on the event loop instead of spinning in SQLite's busy handler.
`sqlite:///:memory:` is one private in-memory database for the whole pool (`memory.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from paywire.config import DEFAULT_POOL_TIMEOUT
from paywire.db import memory, sqlite
from paywire.db.signal import PostgresListener, Signal

if TYPE_CHECKING:
    from paywire.secrets_at_rest import Keyring

# The connection a read or a transaction holds, by a name the pages can import without SQLAlchemy.
Connection = AsyncConnection

__all__ = ["Database", "Outage", "Tx", "async_url", "is_unavailable", "outage"]


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


_SQLITE_BUSY_TIMEOUT = 30.0  # seconds


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, wal: bool = True) -> None:
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own handling is broken).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    if wal:  # (a memory database has no WAL: its journal is in memory)
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT * 1000)}")
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
    database: Database | None = None

    @property
    def keyring(self) -> Keyring:
        """The keyring of the database this transaction is on (stored secrets go through it)."""
        if self.database is None:
            raise RuntimeError("this transaction has no database, hence no keyring")
        return self.database.keyring


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 10, pool_timeout: float | None = None, keyring: Keyring | None = None
    ) -> None:
        self.url = url
        self._keyring = keyring
        timeout = DEFAULT_POOL_TIMEOUT if pool_timeout is None else pool_timeout  # the settings' value, handed in
        sa_url = make_url(async_url(url))
        self.dialect = "sqlite" if sa_url.get_backend_name() == "sqlite" else "postgresql"
        # `sqlite:///:memory:`: one private database shared by this pool, dropped by `dispose`.
        self._memory: memory.MemoryDatabase | None = None
        self._memory_write: tuple[asyncio.Task[Any] | None, AsyncConnection] | None = None
        if self.dialect == "sqlite":
            database = sa_url.database or ""
            memory_pool: dict[str, Any] = {}
            if memory.is_memory(sa_url):
                self._memory = memory.MemoryDatabase(timeout=_SQLITE_BUSY_TIMEOUT)
                sa_url = self._memory.url(sa_url)
                memory_pool["poolclass"] = AsyncAdaptedQueuePool  # (SQLAlchemy's default there is one connection)
            elif database:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            _quiet_driver_log("aiosqlite")
            self.engine: AsyncEngine = create_async_engine(
                sa_url,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=timeout,
                hide_parameters=True,
                json_serializer=_json_serializer,
                **memory_pool,
            )
            pragmas = functools.partial(_sqlite_pragmas, wal=self._memory is None)
            sa_event.listen(self.engine.sync_engine, "do_connect", sqlite.use_buffered_cursors)
            sa_event.listen(self.engine.sync_engine, "connect", pragmas)
            sa_event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            self.engine = create_async_engine(
                sa_url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=timeout,
                hide_parameters=True,
                json_serializer=_json_serializer,
            )
            _check_pooled_connections(self.engine)
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
    def keyring(self) -> Keyring:
        """The keys of the secrets stored in this database. `PaywireApp` hands its keyring in;
        a `Database` made without one (tools, tests) builds it from the settings on first use,
        the way `PaywireApp` does."""
        if self._keyring is None:
            from paywire.secrets_at_rest import keyring_for
            from paywire.settings import Settings

            settings = Settings(database_url=self.url)
            self._keyring = keyring_for(self.url, *settings.encryption_keys())
        return self._keyring

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction; callbacks in `tx.after_commit` run only once it has committed."""
        gate = self._memory.gate.exclusive() if self._memory else contextlib.nullcontext()
        async with self._write_lock or contextlib.nullcontext(), gate, self.engine.connect() as conn:
            await conn.execution_options(paywire_write=True)
            tx = Tx(conn, database=self)
            if self._memory is not None:  # (see `_memory_read`)
                self._memory_write = (asyncio.current_task(), conn)
            try:
                async with conn.begin():
                    yield tx
                    hook = before_commit.get()
                    if hook is not None:
                        await hook(conn)
            finally:
                self._memory_write = None
        if tx.events_appended:
            self.signal.notify()
        for callback in tx.after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (one consistent snapshot on both databases)."""
        if self._memory is not None:
            async with self._memory_read() as conn:
                yield conn
            return
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def _memory_read(self) -> AsyncIterator[AsyncConnection]:
        # A read inside this task's own write transaction would wait for that commit, which
        # waits for the read: it runs on the write's connection instead, in a savepoint (so it
        # sees this transaction's own writes, which a file database's snapshot would not).
        assert self._memory is not None
        writing = self._memory_write
        if writing is not None and writing[0] is asyncio.current_task():
            async with writing[1].begin_nested():
                yield writing[1]
            return
        async with self._memory.gate.shared(), self.engine.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await self.engine.dispose()
        if self._memory is not None:
            self._memory.close()


class Outage(StrEnum):
    """A database failure that is not the request's fault: the same call may work later."""

    UNAVAILABLE = "unavailable"  # unreachable: restarting, refusing connections, connection lost
    TIMEOUT = "timeout"  # a statement ran past `statement_timeout` (or was cancelled)
    POOL_EXHAUSTED = "pool_exhausted"  # no pooled connection came free within the pool timeout
    STORAGE_FULL = "storage_full"  # the database's disk (or its size limit) is full


# PostgreSQL SQLSTATEs, by what they mean here. Class 08 (connection exceptions) is unavailable too.
_PG_TIMEOUT = frozenset({"57014"})  # query_canceled
_PG_GONE = frozenset(
    {
        "57P01",  # admin_shutdown: the server is shutting down, or pg_terminate_backend
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: the database system is starting up / shutting down
        "57P04",  # database_dropped
        "53300",  # too_many_connections
        "53200",  # out_of_memory
    }
)
_PG_FULL = frozenset({"53100"})  # disk_full
# Only when raised outside a statement (SQLAlchemy records none for a failed connect): the
# database exists but takes no connections now (`ALTER DATABASE … ALLOW_CONNECTIONS false`,
# mid-restore); raised by a statement, 55000 is a program error.
_PG_REFUSED = frozenset({"55000"})
# SQLite primary result codes (the low byte of `sqlite_errorcode`).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13


def outage(exc: BaseException) -> Outage | None:
    """What kind of database outage `exc` is, or None if it is not one (a bug, a constraint…).

    Recognised by exception class and SQLSTATE / SQLite result code, never by message text:
    asyncpg's errors reach us wrapped by SQLAlchemy as a bare `DBAPIError` whose `orig` carries
    the SQLSTATE (`CannotConnectNowError` 57P03, `AdminShutdownError` 57P01,
    `ConnectionDoesNotExistError` 08003…), and a refused TCP connection arrives unwrapped as
    `ConnectionRefusedError`.
    """
    if isinstance(exc, sa.exc.TimeoutError):  # QueuePool: no connection free within pool_timeout
        return Outage.POOL_EXHAUSTED
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate in _PG_TIMEOUT:
            return Outage.TIMEOUT
        if sqlstate in _PG_FULL:
            return Outage.STORAGE_FULL
        connecting = isinstance(exc, sa.exc.DBAPIError) and exc.statement is None
        if sqlstate.startswith("08") or sqlstate in _PG_GONE or (connecting and sqlstate in _PG_REFUSED):
            return Outage.UNAVAILABLE
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary == _SQLITE_FULL:
            return Outage.STORAGE_FULL
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):  # contention past the busy timeout: not an outage
            return None
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return Outage.UNAVAILABLE
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return Outage.UNAVAILABLE
    if isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError)):
        return Outage.UNAVAILABLE
    if exc.__cause__ is not None and exc.__cause__ is not exc:
        return outage(exc.__cause__)
    return None


# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out. A
# busy one is not: SQLAlchemy's `pool_pre_ping` pinged on every checkout, three round trips
# (BEGIN, `;`, ROLLBACK) of a request's ten or so. A connection that died in use fails its
# statement instead, and SQLAlchemy then has the pool replace every connection it holds: on the
# disconnects its asyncpg dialect recognises (a closed connection), and on every other outage
# too through `_outage_is_disconnect`.
_PING_AFTER_IDLE = 5.0  # seconds


def _check_pooled_connections(engine: AsyncEngine) -> None:
    """Hand out only live connections, without a ping per checkout (PostgreSQL)."""
    dialect = engine.sync_engine.dialect

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["paywire_idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("paywire_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise sa.exc.DisconnectionError("a pooled connection failed its ping") from exc

    sa_event.listen(engine.sync_engine, "checkin", checked_in)
    sa_event.listen(engine.sync_engine, "checkout", checked_out)
    sa_event.listen(engine.sync_engine, "handle_error", _outage_is_disconnect)


def _outage_is_disconnect(context: sa.engine.ExceptionContext) -> None:
    """A statement that failed because the server went away (restart, `pg_terminate_backend`)
    on a connection asyncpg has not yet marked closed (so SQLAlchemy's own check says no): have
    SQLAlchemy treat it as a disconnect, so the pool replaces all its connections, not only this
    one, before the next checkout (the others died with it)."""
    error = context.sqlalchemy_exception or context.original_exception
    if not context.is_disconnect and error is not None and outage(error) is Outage.UNAVAILABLE:
        context.is_disconnect = True


def is_unavailable(exc: BaseException) -> bool:
    """True for database errors that are not the work's fault (see `outage`): retry it later."""
    return outage(exc) is not None

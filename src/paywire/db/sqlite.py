"""aiosqlite with one thread round trip per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
three or four such calls per statement (open a cursor, execute, fetch, close). Each is a hop to
the thread and back through the event loop; under load a hop waits for a whole loop iteration,
and the dispatcher's one transaction per batch took 30 of them (measured: 40 of its 50 ms).
Here a statement is executed, fully fetched and its cursor closed in a single hop; the rows
are then read from memory. Everything else is aiosqlite's own `Connection`.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite

_Result = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, many: bool, sql: str, parameters: Any) -> _Result:
    """On the connection's thread: execute, fetch every row, close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class BufferedCursor:
    """The DB-API cursor SQLAlchemy's aiosqlite adapter drives, holding its result in memory."""

    arraysize = 1

    def __init__(self, connection: BufferedConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> BufferedCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _call(self, many: bool, sql: str, parameters: Any) -> BufferedCursor:
        conn = self._connection._conn
        result: _Result = await self._connection._execute(_run, conn, many, sql, parameters)  # type: ignore[no-untyped-call]
        self.description, rows, self.rowcount, self.lastrowid = result
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> BufferedCursor:
        return await self._call(False, sql, () if parameters is None else parameters)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> BufferedCursor:
        return await self._call(True, sql, parameters)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(len(self._rows), self.arraysize if size is None else size)
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows, self._rows = list(self._rows), deque()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class BufferedConnection(aiosqlite.Connection):
    def cursor(self) -> BufferedCursor:  # type: ignore[override]
        return BufferedCursor(self)


def connect(database: str, **kwargs: Any) -> BufferedConnection:
    """What SQLAlchemy calls in place of `aiosqlite.connect` (see `engine.Database`)."""
    connector: Callable[[], sqlite3.Connection] = partial(sqlite3.connect, database, **kwargs)
    connection = BufferedConnection(connector, 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never block exit
    return connection


def use_buffered_cursors(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
    """SQLAlchemy `do_connect` hook: open the connection through `connect` above."""
    return dialect.loaded_dbapi.connect(*cargs, async_creator_fn=connect, **cparams)

"""Statements over many rows at once, built once and reused.

The dispatcher runs the same few statements in every turn. Building a SQLAlchemy statement and
its cache key costs 0.1 to 0.4 ms each (measured), more than executing it from the compiled
cache, so the hot ones are built once per backend with bind parameters, then only executed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def in_param(column: sa.ColumnElement[Any], name: str, postgres: bool) -> sa.ColumnElement[bool]:
    """`column IN (:name…)` for a list given at execution; on PostgreSQL `column = ANY(:name)`,
    one prepared statement whatever the count (an IN list is prepared and planned again for every
    list length)."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


@functools.cache
def _insert_statement(table: sa.Table, names: tuple[str, ...], postgres: bool) -> sa.Insert:
    if not postgres:
        return table.insert()
    columns = [table.c[name] for name in names]
    arrays = [sa.bindparam(f"{c.name}__values", type_=postgresql.ARRAY(c.type)) for c in columns]
    source = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    return table.insert().from_select(columns, sa.select(*source.c))


async def insert_rows(conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (all with the same keys) into `table`.

    PostgreSQL: one `INSERT … SELECT FROM unnest(array, …)` with one array per column, a single
    statement whatever the count (executemany runs the insert once per row: measured at ~13 µs of
    server time per row, against ~7 with unnest). SQLite: executemany, which loops in C anyway.
    """
    if not rows:
        return
    names = tuple(rows[0])
    postgres = is_postgres(conn)
    statement = _insert_statement(table, names, postgres)
    if postgres:
        await conn.execute(statement, {f"{name}__values": [row[name] for row in rows] for name in names})
    else:
        await conn.execute(statement, list(rows))


@functools.cache
def _plain_insert_sql(table: sa.Table, names: tuple[str, ...]) -> str:
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


async def insert_tuples(
    conn: AsyncConnection, table: sa.Table, names: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """`insert_rows` for rows given as tuples in the order of `names`, into columns of plain
    types only (strings, numbers, booleans: nothing for SQLAlchemy to convert on the way in).

    SQLite: the DB-API's executemany straight from the tuples (measured: 4.8 µs a row against
    8.2 through SQLAlchemy's per-row parameter processing, 14 columns). PostgreSQL: the same
    `unnest` statement as `insert_rows`, its arrays taken column by column from the tuples.
    """
    if not rows:
        return
    if is_postgres(conn):
        columns = zip(*rows, strict=True)
        await conn.execute(
            _insert_statement(table, names, True),
            {f"{name}__values": list(values) for name, values in zip(names, columns, strict=True)},
        )
    else:
        await conn.exec_driver_sql(_plain_insert_sql(table, names), list(rows))

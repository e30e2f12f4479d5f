"""`paywire.db.sqlite`: what SQLAlchemy needs from a cursor, in one thread round trip per statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from paywire.db import sqlite
from paywire.db.engine import Database

things = sa.Table(
    "things",
    sa.MetaData(),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(20), nullable=False, unique=True),
)


async def test_statements_results_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database("sqlite:///:memory:")
    hops = 0
    execute: Callable[..., Awaitable[Any]] = sqlite.BufferedConnection._execute

    async def counting(self: sqlite.BufferedConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await execute(self, fn, *args, **kwargs)

    try:
        async with db.transaction() as tx:
            await tx.conn.run_sync(things.metadata.create_all)
            monkeypatch.setattr(sqlite.BufferedConnection, "_execute", counting)
            inserted = await tx.conn.execute(things.insert().values(name="a"))
            assert inserted.inserted_primary_key == (1,)  # lastrowid
            assert hops == 1
            await tx.conn.execute(things.insert(), [{"name": f"n{i}"} for i in range(5)])  # executemany
            updated = await tx.conn.execute(things.update().where(things.c.name.like("n%")).values(name=things.c.name))
            assert updated.rowcount == 5
            assert hops == 3
            result = await tx.conn.execute(sa.select(things.c.name).order_by(things.c.seq))
            assert hops == 4  # executed and fetched in one hop: reading the rows costs none
            assert result.fetchone() == ("a",)
            assert result.fetchmany(2) == [("n0",), ("n1",)]
            assert [r.name for r in result] == ["n2", "n3", "n4"]
        with pytest.raises(sa.exc.IntegrityError):
            async with db.transaction() as tx:
                await tx.conn.execute(things.insert().values(name="a"))
        async with db.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(things)) == 6
    finally:
        await db.dispose()

"""Fixtures of the fault tests: an emptied PostgreSQL test database, processes, a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import _truncate_pg
from tests.faults.harness import Procs
from tests.integration.delivery_receiver import Receiver


@pytest.fixture
async def fault_url(pg_url: str) -> str:
    """The session's PostgreSQL database, emptied (several processes share it, as in production)."""
    await _truncate_pg(pg_url)
    return pg_url


@pytest.fixture
def procs(fault_url: str, tmp_path: Path) -> Iterator[Procs]:
    group = Procs(fault_url, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()

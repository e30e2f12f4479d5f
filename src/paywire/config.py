"""Settings read from the environment, kept free of heavy imports (the CLI reads them first)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SQLITE_PATH = Path(".paywire") / "paywire.db"


def default_database_url() -> str:
    """`PAYWIRE_DATABASE_URL`, else SQLite in `./.paywire/paywire.db`."""
    return os.environ.get("PAYWIRE_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def database_pool_timeout() -> float:
    """`PAYWIRE_DATABASE_POOL_TIMEOUT`: seconds a request waits for a free pooled connection
    before it answers 503 `database_pool_exhausted` (default 30)."""
    return float(os.environ.get("PAYWIRE_DATABASE_POOL_TIMEOUT") or 30)

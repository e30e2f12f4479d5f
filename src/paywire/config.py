"""Defaults the CLI needs before it loads the settings, kept free of heavy imports.

Every setting itself lives in `paywire.settings.Settings`.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SQLITE_PATH = Path(".paywire") / "paywire.db"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"
DEFAULT_POOL_TIMEOUT = 30.0  # seconds a request waits for a pooled connection (database_pool_timeout)

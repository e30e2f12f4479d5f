"""Storage: the schema, the connection to SQLite or PostgreSQL, migrations and wake-ups."""

from paywire.db.engine import Database, Tx

__all__ = ["Database", "Tx"]

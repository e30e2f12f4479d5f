"""Storage: the schema, the connection to SQLite or PostgreSQL, migrations and wake-ups."""

from paywire.db.engine import Database, Tx, default_database_url

__all__ = ["Database", "Tx", "default_database_url"]

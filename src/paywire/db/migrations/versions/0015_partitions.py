"""PostgreSQL: webhook_attempts partitioned by day of `created` (see paywire/db/partitions.py)

No row is copied. The old table is renamed `webhook_attempts_legacy` and, if it holds rows,
attached as the partition of everything before tomorrow, or before the day after its newest row
(attaching reads it once, to check that bound; its indexes are taken over as they are); an empty
one is dropped. Then the partitioned `webhook_attempts` gets a partition per UTC day from there
to a week ahead, and a DEFAULT partition. Each partition has its own primary key on `seq` and
unique `id`; all take `seq` from the same sequence. SQLite: nothing changes (retention deletes in batches there).

Revision ID: 0015_partitions
Revises: 0014_renewal_storm (re-chained at merge)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0015_partitions"
down_revision: str | None = "0014_renewal_storm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = 86_400
AHEAD_DAYS = 7  # paywire.db.partitions.AHEAD_DAYS, as of this migration
T = "webhook_attempts"
INDEXES = {  # name: columns, as in schema.py
    "ix_webhook_attempts_endpoint_id_created": "endpoint_id, created, status, duration_ms",
    "ix_webhook_attempts_event_id": "event_id",
    "ix_webhook_attempts_livemode_seq": "livemode, seq",
}


def _keys(name: str) -> None:
    op.execute(f"ALTER TABLE {name} ADD CONSTRAINT pk_{name} PRIMARY KEY (seq)")
    op.execute(f"ALTER TABLE {name} ADD CONSTRAINT uq_{name}_id UNIQUE (id)")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    today = int(time.time() // DAY * DAY)
    latest = bind.scalar(sa.text(f"SELECT max(created) FROM {T}"))  # None: no rows
    op.execute(f"ALTER TABLE {T} RENAME TO {T}_legacy")
    op.execute(f"ALTER TABLE {T}_legacy RENAME CONSTRAINT pk_{T} TO pk_{T}_legacy")
    op.execute(f"ALTER TABLE {T}_legacy RENAME CONSTRAINT uq_{T}_id TO uq_{T}_legacy_id")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name.replace(T, T + '_legacy')}")
    op.execute(f"CREATE TABLE {T} (LIKE {T}_legacy INCLUDING DEFAULTS) PARTITION BY RANGE (created)")
    op.execute(f"ALTER SEQUENCE {T}_seq_seq OWNED BY {T}.seq")  # outlives the legacy partition
    op.execute(f"ALTER TABLE {T}_legacy ALTER COLUMN seq DROP DEFAULT")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {T} ({columns})")
    if latest is not None:  # the legacy partition ends after tomorrow and after its last row
        first = max(today, int(latest // DAY * DAY)) + DAY
        op.execute(f"ALTER TABLE {T} ATTACH PARTITION {T}_legacy FOR VALUES FROM (MINVALUE) TO ({first})")
    else:
        first = today
        op.execute(f"DROP TABLE {T}_legacy")
    for start in range(first, max(first, today + (AHEAD_DAYS + 1) * DAY), DAY):
        name = f"{T}_p{datetime.fromtimestamp(start, UTC):%Y%m%d}"
        op.execute(f"CREATE TABLE {name} PARTITION OF {T} FOR VALUES FROM ({start}) TO ({start + DAY})")
        _keys(name)
    op.execute(f"CREATE TABLE {T}_default PARTITION OF {T} DEFAULT")
    _keys(f"{T}_default")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE {T}_plain (LIKE {T} INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {T}_plain SELECT * FROM {T}")
    op.execute(f"ALTER SEQUENCE {T}_seq_seq OWNED BY {T}_plain.seq")
    op.execute(f"DROP TABLE {T}")  # and every partition
    op.execute(f"ALTER TABLE {T}_plain RENAME TO {T}")
    op.execute(f"ALTER TABLE {T} ADD CONSTRAINT pk_{T} PRIMARY KEY (seq), ADD CONSTRAINT uq_{T}_id UNIQUE (id)")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {T} ({columns})")

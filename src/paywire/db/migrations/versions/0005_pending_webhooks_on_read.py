"""pending_webhooks counted on read: drop the stored counter

An event's `pending_webhooks` is now counted from its pending deliveries when the event is read
(`events.log.select_events`). Keeping it stored cost a write to the event's row for every
delivery that finished, on the dispatcher's hot path; events are now written once.

Revision ID: 0005_pending_webhooks_on_read
Revises: 0004_lean_delivery_indexes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_pending_webhooks_on_read"
down_revision: str | None = "0004_lean_delivery_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite ≥ 3.35 drops a column in place (no table copy); the column has no index.
    op.drop_column("events", "pending_webhooks")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events RESET (fillfactor)")  # its rows are no longer updated


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events SET (fillfactor = 85)")
    op.add_column("events", sa.Column("pending_webhooks", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE events SET pending_webhooks = (SELECT count(*) FROM webhook_deliveries d"
        " WHERE d.event_id = events.id AND d.status = 'pending')"
    )

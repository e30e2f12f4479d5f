"""lean delivery indexes: drop the three that no query uses; room for in-place updates

Every delivery row is inserted, claimed and finished, and every attempt inserted: each index on
them is work on the dispatcher's hot path. `webhook_deliveries(endpoint_id)` is the prefix of
`(endpoint_id, status, next_attempt)`; `webhook_deliveries(status, next_attempt)` served no
query (claims read per endpoint), and on SQLite it was a trap for the planner; nothing looks
attempts up by `delivery_seq`.

PostgreSQL: a claim's lease and an event's `pending_webhooks` change no indexed column, so they
can be updated in place (HOT, no index entries) when the row's page has room: leave some.

Revision ID: 0004_lean_delivery_indexes
Revises: 0003_billing
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_lean_delivery_indexes"
down_revision: str | None = "0003_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_endpoint_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_status_next_attempt", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_attempts_delivery_seq", table_name="webhook_attempts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE webhook_deliveries SET (fillfactor = 70)")
        op.execute("ALTER TABLE events SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE webhook_deliveries RESET (fillfactor)")
        op.execute("ALTER TABLE events RESET (fillfactor)")
    op.create_index("ix_webhook_attempts_delivery_seq", "webhook_attempts", ["delivery_seq"])
    op.create_index("ix_webhook_deliveries_status_next_attempt", "webhook_deliveries", ["status", "next_attempt"])
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries", ["endpoint_id"])

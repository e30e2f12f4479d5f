"""event destinations: a type, an encrypted config and an ordering per endpoint; ordered deliveries

Revision ID: 0012_event_destinations
Revises: 0011_attempt_rollups (re-chained at merge)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_event_destinations"
down_revision: str | None = "0011_attempt_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("type", sa.String(length=16), nullable=False, server_default="webhook"))
        batch_op.add_column(sa.Column("config", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ordering", sa.String(length=16), nullable=False, server_default="none"))
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_key", sa.String(length=80), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_ordered",
        "webhook_deliveries",
        ["endpoint_id", "order_key", "seq"],
        unique=False,
        postgresql_where=sa.text("order_key IS NOT NULL"),
        sqlite_where=sa.text("order_key IS NOT NULL"),
    )
    table = op.create_table(
        "destination_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destination_versions")),
    )
    op.bulk_insert(table, [{"id": 1, "token": "initial"}])


def downgrade() -> None:
    op.drop_table("destination_versions")
    op.drop_index("ix_webhook_deliveries_ordered", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("order_key")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("ordering")
        batch_op.drop_column("config")
        batch_op.drop_column("type")

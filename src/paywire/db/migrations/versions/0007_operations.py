"""operations: worker heartbeats (for /readyz); who advances a test clock, under a lease

Revision ID: 0007_operations
Revises: 0006_payer_pages
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_operations"
down_revision: str | None = "0006_payer_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_heartbeats_last_seen"), ["last_seen"], unique=False)
    with op.batch_alter_table("test_clocks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("advance_owner", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("advance_lease", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("test_clocks", schema=None) as batch_op:
        batch_op.drop_column("advance_lease")
        batch_op.drop_column("advance_owner")
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_last_seen"))
    op.drop_table("worker_heartbeats")

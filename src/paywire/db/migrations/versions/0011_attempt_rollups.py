"""attempt rollups: per endpoint and UTC hour, attempts by outcome and a latency histogram

Filled from the attempts already stored (one grouped scan of `webhook_attempts`), so the
dashboard's overview and endpoint health show the same figures right after the upgrade. The
latency buckets are those of `paywire.webhooks.rollups.LATENCY_BOUNDS` at this revision.

Revision ID: 0011_attempt_rollups
Revises: 0010_secrets_encrypted
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_attempt_rollups"
down_revision: str | None = "0010_secrets_encrypted"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOUNDS = (10, 25, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10_000)  # ms; l11 is 10 s and over


def upgrade() -> None:
    op.create_table(
        "webhook_attempt_rollups",
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        *(sa.Column(f"l{i}", sa.Integer(), nullable=False) for i in range(len(BOUNDS) + 1)),
        sa.PrimaryKeyConstraint("endpoint_id", "hour", "slot", name=op.f("pk_webhook_attempt_rollups")),
    )
    with op.batch_alter_table("webhook_attempt_rollups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_attempt_rollups_livemode_hour"), ["livemode", "hour"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":  # a cast to integer rounds there: floor first
        hour = "CAST(floor(created / 3600) * 3600 AS BIGINT)"
    else:  # SQLite's cast truncates (created is never negative)
        hour = "(CAST(created AS INTEGER) - CAST(created AS INTEGER) % 3600)"
    lowers = (None, *BOUNDS)
    uppers = (*BOUNDS, None)
    buckets = []
    for lower, upper in zip(lowers, uppers, strict=True):
        conditions = [c for c in (lower and f"duration_ms >= {lower}", upper and f"duration_ms < {upper}") if c]
        buckets.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END)")
    names = ", ".join(f"l{i}" for i in range(len(buckets)))
    op.execute(
        f"INSERT INTO webhook_attempt_rollups (endpoint_id, hour, slot, livemode, succeeded, failed, {names})"
        f" SELECT endpoint_id, {hour}, 0, livemode,"
        " SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'succeeded' THEN 0 ELSE 1 END),"
        f" {', '.join(buckets)}"
        f" FROM webhook_attempts GROUP BY endpoint_id, {hour}, livemode"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempt_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempt_rollups_livemode_hour"))
    op.drop_table("webhook_attempt_rollups")

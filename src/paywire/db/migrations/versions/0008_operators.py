"""operators: the dashboard's operators, sessions, failed sign-ins and audit log

Also: `webhook_attempts(endpoint_id)` becomes `(endpoint_id, created, status, duration_ms)`, so an
endpoint's health over the last 24 hours reads only those attempts, from the index alone. It
replaces its own prefix, so recording an attempt keeps the same number of index writes.

Revision ID: 0008_operators
Revises: 0007_operations
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_operators"
down_revision: str | None = "0007_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _seq() -> sa.Column[int]:
    return sa.Column("seq", Seq, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "operators",
        _seq(),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_operators"),
        sa.UniqueConstraint("id", name="uq_operators_id"),
        sa.UniqueConstraint("email", name="uq_operators_email"),
    )
    op.create_table(
        "operator_sessions",
        _seq(),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(40), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_operator_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_operator_sessions_token_hash"),
    )
    op.create_index("ix_operator_sessions_operator_id", "operator_sessions", ["operator_id"])
    op.create_table(
        "sign_in_failures",
        _seq(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_sign_in_failures"),
    )
    op.create_index("ix_sign_in_failures_email_created", "sign_in_failures", ["email", "created"])
    op.create_index("ix_sign_in_failures_ip_created", "sign_in_failures", ["ip", "created"])
    op.create_table(
        "audit_log",
        _seq(),
        sa.Column("operator_id", sa.String(40), nullable=True),
        sa.Column("operator_email", sa.String(320), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("object_id", sa.String(40), nullable=True),
        sa.Column("livemode", sa.Boolean, nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    columns = ["endpoint_id", "created", "status", "duration_ms"]
    op.create_index("ix_webhook_attempts_endpoint_id_created", "webhook_attempts", columns)
    op.drop_index("ix_webhook_attempts_endpoint_id", table_name="webhook_attempts")


def downgrade() -> None:
    op.create_index("ix_webhook_attempts_endpoint_id", "webhook_attempts", ["endpoint_id"])
    op.drop_index("ix_webhook_attempts_endpoint_id_created", table_name="webhook_attempts")
    op.drop_table("audit_log")
    op.drop_index("ix_sign_in_failures_ip_created", table_name="sign_in_failures")
    op.drop_index("ix_sign_in_failures_email_created", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    op.drop_index("ix_operator_sessions_operator_id", table_name="operator_sessions")
    op.drop_table("operator_sessions")
    op.drop_table("operators")

"""payer pages: hosted checkout URLs and locales, payment links, customer portal sessions

Revision ID: 0006_payer_pages
Revises: 0005_pending_webhooks_on_read
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_payer_pages"
down_revision: str | None = "0005_pending_webhooks_on_read"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("checkout_sessions") as batch:
        batch.add_column(sa.Column("url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(8), nullable=True))
        batch.add_column(sa.Column("payment_link_id", sa.String(40), nullable=True))
    op.create_index("ix_checkout_sessions_payment_link_id", "checkout_sessions", ["payment_link_id"])
    op.create_table(
        "payment_links",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("line_items", sa.JSON, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("trial_period_days", sa.Integer, nullable=True),
        sa.Column("after_completion_url", sa.String(2048), nullable=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_payment_links"),
        sa.UniqueConstraint("id", name="uq_payment_links_id"),
    )
    op.create_index("ix_payment_links_livemode_seq", "payment_links", ["livemode", "seq"])
    op.create_table(
        "billing_portal_sessions",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("customer_id", sa.String(40), nullable=False),
        sa.Column("return_url", sa.String(2048), nullable=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=True),
        sa.Column("cookie_hash", sa.String(64), nullable=True),
        sa.Column("cookie_expires_at", sa.BigInteger, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_billing_portal_sessions"),
        sa.UniqueConstraint("id", name="uq_billing_portal_sessions_id"),
        sa.UniqueConstraint("token_hash", name="uq_billing_portal_sessions_token_hash"),
        sa.UniqueConstraint("cookie_hash", name="uq_billing_portal_sessions_cookie_hash"),
    )
    op.create_index("ix_billing_portal_sessions_customer_id", "billing_portal_sessions", ["customer_id"])


def downgrade() -> None:
    op.drop_table("billing_portal_sessions")
    op.drop_table("payment_links")
    op.drop_index("ix_checkout_sessions_payment_link_id", "checkout_sessions")
    with op.batch_alter_table("checkout_sessions") as batch:
        batch.drop_column("payment_link_id")
        batch.drop_column("locale")
        batch.drop_column("url")

"""Stripe provider: charges outside the write transaction, provider customers, provider events

- `customers.provider_customer_ref`: the provider's customer (Stripe `cus_…`), made on first need.
- `payment_intents`: `next_action` (3-D Secure), and for a charge in flight (`processing`) its
  `subject_id`, `continuation` and `processing_since` (see billing/charging.py).
- `refunds.processing_since`: a refund asked of the provider and not yet answered (`pending`).
- `provider_events`: the provider webhook events already applied (a repeat is ignored).

Revision ID: 0009_stripe_provider
Revises: 0008_operators
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_stripe_provider"
down_revision: str | None = "0008_operators"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("provider_customer_ref", sa.String(80), nullable=True))
    op.add_column("payment_intents", sa.Column("next_action", sa.JSON(), nullable=True))
    op.add_column("payment_intents", sa.Column("subject_id", sa.String(40), nullable=True))
    op.add_column("payment_intents", sa.Column("continuation", sa.JSON(), nullable=True))
    op.add_column("payment_intents", sa.Column("processing_since", sa.Float, nullable=True))
    op.create_index(op.f("ix_payment_intents_subject_id"), "payment_intents", ["subject_id"])
    op.add_column("refunds", sa.Column("processing_since", sa.Float, nullable=True))
    op.create_table(
        "provider_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("type", sa.String(80), nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_events")
    op.drop_column("refunds", "processing_since")
    op.drop_index(op.f("ix_payment_intents_subject_id"), table_name="payment_intents")
    for column in ("processing_since", "continuation", "subject_id", "next_action"):
        op.drop_column("payment_intents", column)
    op.drop_column("customers", "provider_customer_ref")

"""billing: test clocks, checkout sessions, subscriptions, invoices, payments, refunds, jobs

Revision ID: 0003_billing
Revises: 0002_delivery
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_billing"
down_revision: str | None = "0002_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_jobs",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_billing_jobs")),
        sa.UniqueConstraint("kind", "object_id", "due", name=op.f("uq_billing_jobs_kind_object_id_due")),
    )
    with op.batch_alter_table("billing_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_jobs_object_id"), ["object_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_billing_jobs_status_test_clock_id_due"), ["status", "test_clock_id", "due"], unique=False
        )

    op.create_table(
        "checkout_sessions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_status", sa.String(length=24), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("line_items", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_subtotal", sa.BigInteger(), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("trial_period_days", sa.Integer(), nullable=True),
        sa.Column("subscription_metadata", sa.JSON(), nullable=False),
        sa.Column("success_url", sa.String(length=2048), nullable=True),
        sa.Column("cancel_url", sa.String(length=2048), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=40), nullable=True),
        sa.Column("subscription_id", sa.String(length=40), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("payment_method", sa.String(length=80), nullable=True),
        sa.Column("nft_mint_enabled", sa.Boolean(), nullable=False),
        sa.Column("nft_mint_status", sa.String(length=16), nullable=True),
        sa.Column("nft_mint_details", sa.JSON(), nullable=True),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint("id", name=op.f("uq_checkout_sessions_id")),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkout_sessions_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkout_sessions_livemode_seq"), ["livemode", "seq"], unique=False)

    op.create_table(
        "invoice_items",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("line", sa.JSON(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_invoice_items")),
        sa.UniqueConstraint("id", name=op.f("uq_invoice_items_id")),
    )
    with op.batch_alter_table("invoice_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_items_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "invoices",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("billing_reason", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_payment_attempt", sa.BigInteger(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=40), nullable=True),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_invoices")),
        sa.UniqueConstraint("id", name=op.f("uq_invoices_id")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoices_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_invoices_livemode_seq"), ["livemode", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_invoices_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "minter_keys",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kid", sa.String(length=40), nullable=False),
        sa.Column("private_key", sa.String(length=200), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_minter_keys")),
    )
    op.create_table(
        "payment_intents",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_received", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("payment_method", sa.String(length=80), nullable=True),
        sa.Column("charge_ref", sa.String(length=80), nullable=True),
        sa.Column("charge_attempts", sa.Integer(), nullable=False),
        sa.Column("last_payment_error", sa.JSON(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_payment_intents")),
        sa.UniqueConstraint("id", name=op.f("uq_payment_intents_id")),
    )
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_intents_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_intents_livemode_seq"), ["livemode", "seq"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("refund_ref", sa.String(length=80), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_refunds")),
        sa.UniqueConstraint("id", name=op.f("uq_refunds_id")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_livemode_seq"), ["livemode", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_intent_id"), ["payment_intent_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("default_payment_method", sa.String(length=80), nullable=True),
        sa.Column("billing_cycle_anchor", sa.BigInteger(), nullable=False),
        sa.Column("current_period_start", sa.BigInteger(), nullable=False),
        sa.Column("current_period_end", sa.BigInteger(), nullable=False),
        sa.Column("trial_start", sa.BigInteger(), nullable=True),
        sa.Column("trial_end", sa.BigInteger(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("cancel_at", sa.BigInteger(), nullable=True),
        sa.Column("canceled_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("paused_at", sa.BigInteger(), nullable=True),
        sa.Column("latest_invoice_id", sa.String(length=40), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=40), nullable=True),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("id", name=op.f("uq_subscriptions_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_livemode_seq"), ["livemode", "seq"], unique=False)

    op.create_table(
        "test_clocks",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("frozen_time", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("advance_to", sa.BigInteger(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_test_clocks")),
        sa.UniqueConstraint("id", name=op.f("uq_test_clocks_id")),
    )
    with op.batch_alter_table("test_clocks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_test_clocks_livemode_seq"), ["livemode", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("test_clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_test_clocks_livemode_seq"))

    op.drop_table("test_clocks")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_livemode_seq"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_customer_id"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_payment_intent_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_livemode_seq"))

    op.drop_table("refunds")
    with op.batch_alter_table("payment_intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_intents_livemode_seq"))
        batch_op.drop_index(batch_op.f("ix_payment_intents_customer_id"))

    op.drop_table("payment_intents")
    op.drop_table("minter_keys")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_invoices_livemode_seq"))
        batch_op.drop_index(batch_op.f("ix_invoices_customer_id"))

    op.drop_table("invoices")
    with op.batch_alter_table("invoice_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_items_subscription_id"))

    op.drop_table("invoice_items")
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkout_sessions_livemode_seq"))
        batch_op.drop_index(batch_op.f("ix_checkout_sessions_customer_id"))

    op.drop_table("checkout_sessions")
    with op.batch_alter_table("billing_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_jobs_status_test_clock_id_due"))
        batch_op.drop_index(batch_op.f("ix_billing_jobs_object_id"))

    op.drop_table("billing_jobs")

"""renewal storm: the job claim's index covers its whole order (due, seq)

A claim asks for the earliest pending jobs by `(due, seq)`. With the index ending at `due`, jobs
all due at the same instant (a month-start) came out of it unordered by `seq`: each claim read
and sorted every one of them, so the cost per renewal grew with their number.

Revision ID: 0014_renewal_storm
Revises: 0012_event_destinations (re-chained at merge)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_renewal_storm"
down_revision: str | None = "0012_event_destinations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_jobs_status_test_clock_id_due"))
        batch_op.create_index(
            batch_op.f("ix_billing_jobs_status_test_clock_id_due_seq"), ["status", "test_clock_id", "due", "seq"]
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_jobs_status_test_clock_id_due_seq"))
        batch_op.create_index(
            batch_op.f("ix_billing_jobs_status_test_clock_id_due"), ["status", "test_clock_id", "due"]
        )

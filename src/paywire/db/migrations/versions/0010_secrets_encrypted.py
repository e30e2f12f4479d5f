"""secrets encrypted at rest: room for the AES-GCM envelopes of endpoint secrets and minter keys

The values themselves are encrypted by `PaywireApp` at start-up (`paywire.secrets_store`), with
the keyring the application is configured with: a migration has no business finding the key.
Until then a plain value is still read as it is.

Revision ID: 0010_secrets_encrypted
Revises: 0009_stripe_provider (re-chained as main renumbered its migrations into one line)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_secrets_encrypted"
down_revision: str | None = "0009_stripe_provider"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=80), type_=sa.String(length=400))
    with op.batch_alter_table("minter_keys", schema=None) as batch_op:
        batch_op.alter_column("private_key", existing_type=sa.String(length=200), type_=sa.String(length=400))


def downgrade() -> None:
    # Encrypted values do not fit back: downgrading needs plain values (there is no way back
    # to them here without the key), so this only restores the widths where they fit.
    with op.batch_alter_table("minter_keys", schema=None) as batch_op:
        batch_op.alter_column("private_key", existing_type=sa.String(length=400), type_=sa.String(length=200))
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=400), type_=sa.String(length=80))

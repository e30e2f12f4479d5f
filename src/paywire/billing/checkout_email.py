"""The payer's email on an open checkout session, as the hosted checkout page collects it."""

from __future__ import annotations

from paywire.billing.statuses import CheckoutSessionStatus
from paywire.db.engine import Tx
from paywire.db.schema import checkout_sessions


async def set_email(tx: Tx, session_id: str, email: str) -> None:
    """Set on an open session that has neither a customer nor an email yet; else nothing."""
    await tx.conn.execute(
        checkout_sessions.update()
        .where(
            checkout_sessions.c.id == session_id,
            checkout_sessions.c.status == CheckoutSessionStatus.OPEN,
            checkout_sessions.c.customer_id.is_(None),
            checkout_sessions.c.customer_email.is_(None),
        )
        .values(customer_email=email)
    )

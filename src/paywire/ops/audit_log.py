"""The audit log: what each operator did, when, to which object, in which mode.

Append-only: the dashboard writes a row in the same transaction as the action it records
(where the action has one) and has no way to change or remove rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.schema import audit_log
from paywire.pagination import Cursor, KeysetPage, keyset

ACTIONS = {
    "sign_in": "Signed in",
    "sign_in_failed": "Sign-in failed",
    "sign_out": "Signed out",
    "mode_switched": "Switched mode",
    "endpoint_created": "Created endpoint",
    "endpoint_updated": "Edited endpoint",
    "endpoint_enabled": "Enabled endpoint",
    "endpoint_disabled": "Disabled endpoint",
    "endpoint_deleted": "Deleted endpoint",
    "secret_revealed": "Revealed secret",
    "secret_rotated": "Rotated secret",
    "deliveries_recovered": "Recovered deliveries",
    "test_event_sent": "Sent test event",
    "event_resent": "Resent event",
    "subscription_canceled": "Canceled subscription",
    "payment_refunded": "Refunded payment",
    "test_clock_created": "Created test clock",
    "test_clock_advanced": "Advanced test clock",
}


async def record(
    conn: AsyncConnection,
    *,
    operator_id: str | None,
    email: str,
    action: str,
    object_id: str | None = None,
    livemode: bool | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
    now: float,
) -> None:
    assert action in ACTIONS, action
    await conn.execute(
        audit_log.insert().values(
            operator_id=operator_id,
            operator_email=email[:320],
            action=action,
            object_id=object_id,
            livemode=livemode,
            ip=(ip or "")[:64] or None,
            detail=detail or {},
            created=now,
        )
    )


def listing(*, action: str | None = None, operator: str | None = None) -> sa.Select[Any]:
    query = sa.select(audit_log)
    if action:
        query = query.where(audit_log.c.action == action)
    if operator:
        query = query.where(audit_log.c.operator_email == operator)
    return query


async def page(
    conn: AsyncConnection, cursor: Cursor, *, action: str | None = None, operator: str | None = None
) -> KeysetPage:
    """One keyset page of the log, newest first, filtered by action and operator email."""
    return await keyset(conn, listing(action=action, operator=operator), audit_log.c.seq, cursor)

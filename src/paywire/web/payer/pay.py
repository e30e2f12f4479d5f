"""The one place the pages pay: a checkout session confirmed through the engine, exactly as
`POST /api/checkout-sessions/{id}/confirm` does (same objects, same events, same order).

Paying twice is impossible: `checkout.confirm` locks the session's row and refuses one that is
no longer open, so a double click, a second tab or a retried POST finds it complete.
"""

from __future__ import annotations

from typing import Any

from paywire.billing import checkout_email, flows, read
from paywire.billing.declines import Declinable
from paywire.billing.scheduler import run_due
from paywire.billing.statuses import NftMintStatus
from paywire.events.log import RequestInfo
from paywire.services import Services


async def set_email(services: Services, session_id: str, email: str) -> None:
    """The payer's email, on an open session that has neither a customer nor an email yet."""
    async with services.db.transaction() as tx:
        await checkout_email.set_email(tx, session_id, email)


async def pay(
    services: Services, session_id: str, *, livemode: bool, payment_method: str, request_id: str | None
) -> Declinable[dict[str, Any]]:
    """Confirm the session with `payment_method`; a decline is in the outcome (already committed).
    Raises `StateError` when the session is no longer open (paid meanwhile, or expired)."""
    call = services.billing.call(livemode, RequestInfo(id=request_id))
    # Under the charge step: the provider is called between transactions (billing/charging.py).
    outcome = await flows.confirm_checkout(services.db, call, session_id, payment_method)
    if outcome.declined is None and outcome.value["nft_mint_status"] == NftMintStatus.PENDING:
        await run_due(services.db, services.billing, object_id=session_id)  # as the API does
    return outcome


async def load_session(services: Services, session_id: str) -> dict[str, Any] | None:
    """The session's row (its id is the page's secret: ~83 random bits), in either mode."""
    async with services.db.read() as conn:
        return await read.checkout_session(conn, session_id)

"""What the API and the payer pages call for the billing flows that may charge: each is run
under the charge step (billing/charging.py) by its name in `charge_flows.FLOWS`, with JSON-able
arguments, so a `processing` payment intent's continuation can run it again.
"""

from __future__ import annotations

from typing import Any

from paywire.billing import charging
from paywire.billing.declines import Declinable
from paywire.billing.runtime import Call
from paywire.billing.schemas import SubscriptionCreate, SubscriptionUpdate
from paywire.db.engine import Database


async def confirm_checkout(
    db: Database, call: Call, session_id: str, payment_method: str
) -> Declinable[dict[str, Any]]:
    args = {"session_id": session_id, "payment_method": payment_method}
    outcome: Declinable[dict[str, Any]] = await charging.run(db, call, "checkout.confirm", args, session_id)
    return outcome


async def create_subscription(db: Database, call: Call, params: SubscriptionCreate) -> dict[str, Any]:
    args = {"params": params.model_dump(mode="json", exclude_unset=True)}
    created: dict[str, Any] = await charging.run(db, call, "subscriptions.create", args, params.customer_id)
    return created


async def update_subscription(
    db: Database, call: Call, subscription_id: str, params: SubscriptionUpdate
) -> Declinable[dict[str, Any]]:
    args = {"subscription_id": subscription_id, "params": params.model_dump(mode="json", exclude_unset=True)}
    outcome: Declinable[dict[str, Any]] = await charging.run(db, call, "subscriptions.update", args, subscription_id)
    return outcome


async def resume_subscription(db: Database, call: Call, subscription_id: str) -> dict[str, Any]:
    args = {"subscription_id": subscription_id}
    resumed: dict[str, Any] = await charging.run(db, call, "subscriptions.resume", args, subscription_id)
    return resumed


async def pay_invoice(
    db: Database, call: Call, invoice_id: str, payment_method: str | None
) -> Declinable[dict[str, Any]]:
    args = {"invoice_id": invoice_id, "payment_method": payment_method}
    outcome: Declinable[dict[str, Any]] = await charging.run(db, call, "invoices.pay", args, invoice_id)
    return outcome

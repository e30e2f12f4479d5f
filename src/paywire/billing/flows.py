"""The billing flows that may charge, by name: what a `processing` payment intent's
continuation names, so the finish pass (or the reconciler, after a crash) can run it again.

Each takes JSON-able arguments, so the continuation can be stored on the intent's row.
"""

from __future__ import annotations

from typing import Any

from paywire.billing import charging, checkout, renewals, subscriptions
from paywire.billing.declines import Declinable
from paywire.billing.runtime import Call
from paywire.billing.schemas import SubscriptionCreate, SubscriptionUpdate
from paywire.db.engine import Database, Tx


async def _checkout_confirm(tx: Tx, call: Call, args: dict[str, Any]) -> Declinable[dict[str, Any]]:
    return await checkout.confirm(tx, call, args["session_id"], args["payment_method"])


async def _subscription_create(tx: Tx, call: Call, args: dict[str, Any]) -> dict[str, Any]:
    return await subscriptions.create(tx, call, SubscriptionCreate.model_validate(args["params"]))


async def _subscription_update(tx: Tx, call: Call, args: dict[str, Any]) -> Declinable[dict[str, Any]]:
    params = SubscriptionUpdate.model_validate(args["params"])
    return await subscriptions.update(tx, call, args["subscription_id"], params)


async def _subscription_resume(tx: Tx, call: Call, args: dict[str, Any]) -> dict[str, Any]:
    return await subscriptions.resume(tx, call, args["subscription_id"])


async def _invoice_pay(tx: Tx, call: Call, args: dict[str, Any]) -> Declinable[dict[str, Any]]:
    return await renewals.pay_invoice(tx, call, args["invoice_id"], args["payment_method"])


async def _job(tx: Tx, call: Call, args: dict[str, Any]) -> None:
    from paywire.billing.scheduler import HANDLERS

    job = args["job"]
    await HANDLERS[job["kind"]](tx, call, job, float(args["now"]))


FLOWS: dict[str, charging.Flow] = {
    "checkout.confirm": _checkout_confirm,
    "subscriptions.create": _subscription_create,
    "subscriptions.update": _subscription_update,
    "subscriptions.resume": _subscription_resume,
    "invoices.pay": _invoice_pay,
    "job": _job,
}


# What the API calls: each flow under the charge step.


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

"""The billing flows the charge step runs, by name: what a `processing` payment intent's
continuation names, so the finish pass (or the reconciler, after a crash) can run it again
(billing/charging.py runs them; billing/flows.py is what the API calls them by).

Each takes JSON-able arguments, so the continuation can be stored on the intent's row. A
scheduled job is one of them (`job`): it runs the handler of the job's kind (`HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from paywire.billing import checkout, jobs, renewals, subscriptions
from paywire.billing.declines import Declinable
from paywire.billing.runtime import Call
from paywire.billing.schemas import SubscriptionCreate, SubscriptionUpdate
from paywire.db.engine import Tx

Flow = Callable[[Tx, Call, dict[str, Any]], Awaitable[Any]]
Handler = Callable[[Tx, Call, Any, float], Awaitable[None]]

# What each kind of scheduled job runs (billing/scheduler.py claims them; jobs.py stores them).
HANDLERS: dict[str, Handler] = {
    jobs.TRIAL_WILL_END: renewals.on_trial_will_end,
    jobs.TRIAL_END: renewals.on_trial_end,
    jobs.RENEWAL: renewals.on_renewal,
    jobs.DUNNING_RETRY: renewals.on_dunning_retry,
    jobs.CANCEL: renewals.on_cancel,
    jobs.INCOMPLETE_EXPIRE: renewals.on_incomplete_expire,
    jobs.CHECKOUT_EXPIRE: checkout.on_expire,
    jobs.NFT_MINT: checkout.on_mint,
}


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
    job = args["job"]
    await HANDLERS[job["kind"]](tx, call, job, float(args["now"]))


FLOWS: dict[str, Flow] = {
    "checkout.confirm": _checkout_confirm,
    "subscriptions.create": _subscription_create,
    "subscriptions.update": _subscription_update,
    "subscriptions.resume": _subscription_resume,
    "invoices.pay": _invoice_pay,
    "job": _job,
}

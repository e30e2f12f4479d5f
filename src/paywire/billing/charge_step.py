"""The charge step as a flow sees it (the runner that drives it is billing/charging.py).

A flow reaches the provider only through here: `ask` a question that moves no money, `take_charge`
at its charge. Outside the charge step (`call.step` is None) a question is asked at once; under
it, a question not yet answered raises `Ask` and a charge raises `ChargeNeeded`: the runner rolls
the pass back, asks or charges between transactions, and runs the flow again with the answer.

What a `processing` payment intent stores to be finished later, its *continuation*, is written by
`processing_row` and read back by `finishing_call`; both the runner and the renewal batches
(billing/renewal_batch.py) use them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from paywire.billing.runtime import Billing, Call, Charged, Step
from paywire.billing.statuses import PaymentIntentStatus
from paywire.db.engine import Tx
from paywire.db.schema import customers
from paywire.errors import StateError
from paywire.events.log import RequestInfo
from paywire.providers.base import ChargeResult, ProviderCustomer


class Ask(Exception):
    """A question for the provider that moves no money, asked with no transaction open."""

    def __init__(self, key: str, question: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(key)
        self.key = key
        self.question = question


class ChargeNeeded(Exception):
    """The flow reached its charge: `intent` as it is before it, `payment_method` to charge."""

    def __init__(self, intent: dict[str, Any], payment_method: str, off_session: bool) -> None:
        super().__init__(intent["id"])
        self.intent = intent
        self.payment_method = payment_method
        self.off_session = off_session


# --- asking the provider from inside a flow ---------------------------------------------------


async def ask(call: Call, key: str, question: Callable[[], Awaitable[Any]]) -> Any:
    """The provider's answer to `question`: known, asked at once (no step, or a local provider),
    or asked between transactions (raises `Ask`; the flow runs again with the answer)."""
    step = call.step
    if step is None or step.local:
        return await question()
    if key in step.answers:
        return step.answers[key]
    if step.charged is not None:
        raise RuntimeError(f"the flow asked the provider something new while finishing: {key}")
    raise Ask(key, question)


async def customer_ref(tx: Tx, call: Call, customer_id: str | None) -> str | None:
    """The provider's customer for ours, made on first need (and remembered on our row)."""
    if customer_id is None:
        return None
    row = (
        await tx.conn.execute(
            sa.select(customers.c.email, customers.c.provider_customer_ref).where(customers.c.id == customer_id)
        )
    ).first()
    if row is None:
        return None
    if row.provider_customer_ref:
        return str(row.provider_customer_ref)
    provider = call.provider
    ref: str | None = await ask(
        call,
        f"customer:{customer_id}",
        lambda: provider.ensure_customer(ProviderCustomer(customer_id, row.email, None)),
    )
    if ref:
        await tx.conn.execute(customers.update().where(customers.c.id == customer_id).values(provider_customer_ref=ref))
    return ref


def build_id(call: Call) -> str | None:
    """While finishing, the id the prepared new payment intent had (the flow reuses it)."""
    step = call.step
    if step is not None and step.charged is not None and step.charged.new and not step.charged.built:
        step.charged.built = True
        return step.charged.intent_id
    return None


def take_charge(call: Call, intent: dict[str, Any], payment_method: str, off_session: bool) -> Charged:
    """At the flow's charge: the provider's answer (finish pass), else `ChargeNeeded`."""
    step = call.step
    assert step is not None
    charged = step.charged
    if charged is not None and not charged.taken and charged.intent_id == intent["id"]:
        charged.taken = True
        return charged
    if intent["status"] == PaymentIntentStatus.PROCESSING:
        raise StateError(f"payment intent {intent['id']!r} is being charged; retry later", code="payment_in_progress")
    raise ChargeNeeded(intent, payment_method, off_session)


def is_local(call: Call) -> bool:
    """Whether the mode's provider answers in-process (the test provider): its questions are
    answered at once; its charges still take the charge step."""
    provider = call.billing.live_provider if call.livemode else call.billing.provider
    return bool(getattr(provider, "local", False))


# --- the continuation of a `processing` payment intent -----------------------------------------


def subject_lock_name(subject: str) -> str:
    """The lock that serialises preparing one subject's charges (one at a time, or a batch's)."""
    return f"charge:{subject}"


def processing_row(
    call: Call,
    flow: str,
    args: dict[str, Any],
    need: ChargeNeeded,
    subject: str,
    *,
    new: bool,
    customer_ref: str | None,
) -> dict[str, Any]:
    """The intent's row as `processing`, with its continuation (what `finish` runs again)."""
    assert call.step is not None
    intent = need.intent
    continuation = {
        "flow": flow,
        "args": args,
        "now": call.step.now,
        "livemode": call.livemode,
        "request": dataclasses.asdict(call.request) if call.request else None,
        "answers": call.step.answers,
        "new": new,
        "off_session": need.off_session,
        "customer_ref": customer_ref,
        "previous_status": intent["status"],
    }
    return {
        **{k: v for k, v in intent.items() if k != "seq"},
        "status": PaymentIntentStatus.PROCESSING,
        "payment_method": need.payment_method,
        "charge_attempts": int(intent["charge_attempts"]) + 1,
        "subject_id": subject,
        "continuation": continuation,
        "processing_since": call.billing.clock.now(),
    }


def finishing_call(billing: Billing, intent: dict[str, Any], result: ChargeResult) -> Call:
    """The call a `processing` intent's continuation runs its flow again with: its time, its
    answers and the provider's answer to its charge."""
    cont = intent["continuation"]
    request = RequestInfo(**cont["request"]) if cont.get("request") else None
    charged = Charged(intent["id"], int(intent["charge_attempts"]), intent["payment_method"], result, bool(cont["new"]))
    step = Step(now=float(cont["now"]), answers=dict(cont.get("answers") or {}), charged=charged)
    call = Call(billing, bool(intent["livemode"]), request, step)
    step.local = is_local(call)
    return call

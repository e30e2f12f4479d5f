"""The charge step: the provider is called between transactions, never inside one.

A billing flow (checkout confirm, subscription create, upgrade, resume, pay an invoice, a
scheduled job) is an ordinary function of one write transaction. Under `run` it is run in
*passes*, each inside a savepoint:

1. **prepare** — the flow runs until it needs the provider. A question that moves no money
   (make the provider's customer, save a payment method) rolls the pass back, is asked with no
   transaction open, and the flow runs again with the answer. A charge rolls the pass back too,
   but the same transaction then records the payment intent as `processing` — with the attempt
   number, the payment method and a *continuation* (the flow's name, its arguments, its time,
   the answers it got) — and commits. No event is written yet.
2. **call** — the provider is asked to charge, outside any transaction (on SQLite: without the
   write lock), with the idempotency key `<payment intent id>/<attempt>`. A provider with
   `create_charge` (Stripe) first makes the charge unconfirmed and its reference is stored on
   the intent, then it is confirmed by that reference.
3. **finish** — one transaction locks the intent; if it is still `processing` it runs the
   continuation's flow again with the provider's answer in place of the charge: the flow writes
   its rows and appends all its events, in the contract's order, exactly as a single-transaction
   run would have. An intent no longer `processing` was settled by someone else: nothing to do.

A process that dies between 1 and 3 leaves the intent `processing`; the reconciler
(`billing/reconcile.py`, run by the scheduler) asks the provider again with the same key —
which returns the first answer, never a second charge — and finishes it the same way.

Only one charge per *subject* (checkout session, subscription, invoice) is in flight at a
time: preparing a second answers 409 `payment_in_progress`.

This module is the runner. What a flow calls to reach the provider (`ask`, `take_charge`) and
the continuation's format are `billing/charge_step.py`, below the flows; the flows it runs, by
name, are `billing/charge_flows.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from paywire.billing import payments, renewal_batch
from paywire.billing.charge_flows import FLOWS
from paywire.billing.charge_step import Ask, ChargeNeeded, finishing_call, is_local, processing_row, subject_lock_name
from paywire.billing.runtime import Billing, Call, Step
from paywire.billing.statuses import PaymentIntentStatus
from paywire.db import dialect
from paywire.db.engine import Database, Tx, is_unavailable
from paywire.db.schema import customers, payment_intents
from paywire.errors import ServiceUnavailable, StateError
from paywire.events.log import NewEvent, append
from paywire.providers.base import ChargeResult, ProviderCustomer

log = logging.getLogger("paywire.charging")

PAUSE_ENV = "PAYWIRE_TEST_PAUSE_AFTER_CHARGE"  # tests only: stop between the charge and its record
CHARGES_IN_FLIGHT = 16  # provider calls of one batch of renewals at once (`settle_many`)


# --- running a flow ---------------------------------------------------------------------------


@dataclass
class Done:
    value: Any


async def _pass(tx: Tx, call: Call, flow: str, args: dict[str, Any]) -> Done | Ask | ChargeNeeded:
    mark, appended = len(tx.after_commit), tx.events_appended
    savepoint = await tx.conn.begin_nested()
    try:
        value = await FLOWS[flow](tx, call, args)
    except (Ask, ChargeNeeded) as signal:
        await savepoint.rollback()
        del tx.after_commit[mark:]
        tx.events_appended = appended
        return signal
    # Any other error leaves the savepoint alone: the whole transaction rolls back (and a lost
    # connection's error reaches the caller as it is, not as a failed savepoint rollback).
    await savepoint.commit()
    return Done(value)


async def _subject_lock(tx: Tx, subject: str) -> None:
    """Serialise preparing charges of one subject (SQLite's write transactions already are)."""
    await dialect.lock_names(tx.conn, [subject_lock_name(subject)])


async def prepare_charge(
    tx: Tx, call: Call, flow: str, args: dict[str, Any], need: ChargeNeeded, subject: str
) -> dict[str, Any]:
    """Record the intent as `processing` with its continuation (the caller commits)."""
    assert call.step is not None
    await _subject_lock(tx, subject)
    busy = await tx.conn.scalar(
        sa.select(payment_intents.c.id).where(
            payment_intents.c.subject_id == subject, payment_intents.c.status == PaymentIntentStatus.PROCESSING
        )
    )
    if busy is not None:
        raise StateError(f"a payment for {subject!r} is in progress; retry later", code="payment_in_progress")
    intent = need.intent
    exists = await tx.conn.scalar(sa.select(payment_intents.c.id).where(payment_intents.c.id == intent["id"]))
    ref = await tx.conn.scalar(
        sa.select(customers.c.provider_customer_ref).where(customers.c.id == intent["customer_id"])
    ) if intent["customer_id"] else call.step.customer_ref  # fmt: skip
    values = processing_row(call, flow, args, need, subject, new=exists is None, customer_ref=ref)
    if exists is None:
        await tx.conn.execute(payment_intents.insert().values(**values))
    else:
        values.pop("id")
        await tx.conn.execute(payment_intents.update().where(payment_intents.c.id == intent["id"]).values(**values))
    return {**values, "id": intent["id"]}


async def prepare_job(tx: Tx, call: Call, args: dict[str, Any], subject: str) -> Done | Ask | dict[str, Any]:
    """A scheduled job's first pass, in the transaction that claimed it: done, a question, or
    the payment intent now recorded as `processing` (the caller marks the job done, commits and
    settles it)."""
    outcome = await _pass(tx, call, "job", args)
    if isinstance(outcome, ChargeNeeded):
        return await prepare_charge(tx, call, "job", args, outcome, subject)
    return outcome


async def _remember_created(db: Database, intent: dict[str, Any], created: str) -> None:
    """Store the provider's charge made for this attempt (before it is confirmed)."""
    cont = {**intent["continuation"], "created_ref": created}
    async with db.transaction() as tx:
        await tx.conn.execute(
            payment_intents.update()
            .where(
                payment_intents.c.id == intent["id"],
                payment_intents.c.status == PaymentIntentStatus.PROCESSING,
                payment_intents.c.charge_attempts == intent["charge_attempts"],
            )
            .values(continuation=cont)
        )
    intent["continuation"]["created_ref"] = created


async def call_provider(billing: Billing, intent: dict[str, Any], db: Database | None = None) -> ChargeResult:
    """Ask the provider to charge a `processing` intent (no transaction open). The same intent
    and attempt always send the same idempotency key, so asking again never charges twice.

    A provider with `create_charge` (Stripe, whose keys expire after 24 hours) first makes its
    charge unconfirmed; its id is stored on the intent before `charge` confirms it by that id, so
    asking again, however late, finds that charge instead of making another."""
    cont = intent["continuation"]
    call = billing.call(bool(intent["livemode"]))
    provider = call.provider
    ref = cont.get("customer_ref")
    if ref is None and intent["customer_id"] and not cont.get("local"):
        ref = await provider.ensure_customer(ProviderCustomer(intent["customer_id"], None, None))
        cont["customer_ref"] = ref
    key = f"{intent['id']}/{intent['charge_attempts']}"
    metadata = {"paywire_payment_intent": intent["id"], "paywire_attempt": str(intent["charge_attempts"])}
    charge_ref = intent["charge_ref"] if cont.get("previous_status") == PaymentIntentStatus.REQUIRES_ACTION else None
    create = getattr(provider, "create_charge", None)
    if charge_ref is None and create is not None and db is not None:
        charge_ref = cont.get("created_ref")
        if charge_ref is None:
            charge_ref = await create(
                payment_method=intent["payment_method"], amount=int(intent["amount"]), currency=intent["currency"],
                idempotency_key=key, customer_ref=ref, metadata=metadata,
            )  # fmt: skip
            if charge_ref is not None:
                await _remember_created(db, intent, charge_ref)
    return await provider.charge(
        payment_method=intent["payment_method"],
        amount=int(intent["amount"]),
        currency=intent["currency"],
        idempotency_key=key,
        customer_ref=ref,
        off_session=bool(cont.get("off_session")),
        charge_ref=charge_ref,
        metadata=metadata,
    )


async def pause_for_tests() -> None:
    path = os.environ.get(PAUSE_ENV)
    if path:
        Path(path).write_text(str(os.getpid()))
        while True:  # the test kills this process here
            await asyncio.sleep(3600)


async def finish(db: Database, billing: Billing, intent_id: str, result: ChargeResult, customer: str | None) -> Any:
    """Record the provider's answer: run the continuation's flow with it (one transaction).
    None if the intent was already settled (by the reconciler, a webhook, or the first try)."""
    async with db.transaction() as tx:
        return await finish_in(tx, billing, intent_id, result, customer)


async def finish_in(tx: Tx, billing: Billing, intent_id: str, result: ChargeResult, customer: str | None) -> Any:
    """`finish` inside the caller's transaction (a batch of renewals records all its charges in
    one): a failure that is not the database's rolls back this intent's work alone."""
    row = (
        (await tx.conn.execute(sa.select(payment_intents).where(payment_intents.c.id == intent_id).with_for_update()))
        .mappings()
        .first()
    )
    if row is None or row["status"] != PaymentIntentStatus.PROCESSING:
        return None
    if result.pending:
        return None  # the provider decides later: its webhook (or the reconciler) settles it
    intent = dict(row)
    cont = intent["continuation"]
    if customer and intent["customer_id"]:
        await tx.conn.execute(
            customers.update()
            .where(customers.c.id == intent["customer_id"], customers.c.provider_customer_ref.is_(None))
            .values(provider_customer_ref=customer)
        )
    call = finishing_call(billing, intent, result)
    assert call.step is not None and call.step.charged is not None
    charged = call.step.charged
    # The flow runs as if it were the first time, but on the intent recorded as processing.
    await tx.conn.execute(
        payment_intents.update()
        .where(payment_intents.c.id == intent_id)
        .values(status=cont.get("previous_status") or PaymentIntentStatus.REQUIRES_PAYMENT_METHOD)
    )
    mark, appended = len(tx.after_commit), tx.events_appended
    savepoint = await tx.conn.begin_nested()
    try:
        value = await FLOWS[cont["flow"]](tx, call, cont["args"])
        if not charged.taken:
            raise _Orphan()
    except Exception as exc:  # the flow no longer applies (its object changed meanwhile)
        if isinstance(exc, (sa.exc.SQLAlchemyError, OSError)) or is_unavailable(exc):
            raise  # the database went away: the intent stays processing, the reconciler retries
        await savepoint.rollback()
        # The rollback also released the event-order lock the flow may have taken (PostgreSQL):
        # the next append in this transaction takes it again.
        del tx.after_commit[mark:]
        tx.events_appended = appended
        log.warning(
            "charge %s: its flow %s did not finish (%r); recording the payment alone", intent_id, cont["flow"], exc
        )
        await _record_alone(tx, call, intent, result)
        return None
    await savepoint.commit()
    if result.next_action is not None:  # kept: Stripe's webhook may finish it once the payer acts
        await tx.conn.execute(
            payment_intents.update()
            .where(payment_intents.c.id == intent_id, payment_intents.c.status == PaymentIntentStatus.REQUIRES_ACTION)
            .values(continuation=cont)
        )
    return value


class _Orphan(Exception):
    pass


async def _record_alone(tx: Tx, call: Call, intent: dict[str, Any], result: ChargeResult) -> None:
    """The money moved (or did not) but the flow it was for cannot finish: record the intent's
    outcome and its event, so nothing is lost; the operator decides (refund it)."""
    after = payments.apply_result(
        intent, intent["payment_method"], int(intent["charge_attempts"]), result, call.step.now if call.step else 0
    )
    values = {k: v for k, v in after.items() if k not in ("seq", "id")}
    values.update(continuation=None, processing_since=None)
    await tx.conn.execute(payment_intents.update().where(payment_intents.c.id == intent["id"]).values(**values))
    now = call.step.now if call.step else call.wall_now()
    await append(tx, [NewEvent(payments.outcome_event(after), payments.render(after))], livemode=call.livemode, now=now)


async def settle(db: Database, billing: Billing, intent: dict[str, Any]) -> Any:
    """Steps 2 and 3 for a recorded `processing` intent."""
    try:
        result = await call_provider(billing, intent, db)
    except Exception as exc:
        log.warning("charge %s: the provider did not answer (%r); the reconciler will ask again", intent["id"], exc)
        raise ServiceUnavailable(
            "the payment provider did not answer; the payment is processing and will be settled",
            code="payment_processing",
        ) from exc
    await pause_for_tests()
    ref = intent["continuation"].get("customer_ref")
    return await record_retrying(lambda: finish(db, billing, intent["id"], result, ref))


async def settle_many(
    db: Database,
    billing: Billing,
    intents: list[dict[str, Any]],
    opened: Mapping[str, renewal_batch.Opened] | None = None,
) -> None:
    """Steps 2 and 3 for a batch of `processing` intents (a renewal storm): the provider is asked
    for each, with no transaction open, then every answer is recorded in one transaction. An
    intent whose provider did not answer stays `processing` for the reconciler, as in `settle`.
    `opened`: the renewals' periods as their first pass opened them (`renewal_batch.prepare`)."""
    limit = asyncio.Semaphore(CHARGES_IN_FLIGHT)

    async def ask_one(intent: dict[str, Any]) -> tuple[dict[str, Any], ChargeResult] | None:
        async with limit:
            try:
                return intent, await call_provider(billing, intent, db)
            except Exception as exc:
                log.warning("charge %s: the provider did not answer (%r); the reconciler asks again", intent["id"], exc)
                return None

    if all(is_local(billing.call(bool(intent["livemode"]))) for intent in intents):
        asked = [await ask_one(intent) for intent in intents]  # in-process: no waiting to overlap
    else:  # a network call each (Stripe): several in flight, so a batch waits for the slowest, not the sum
        asked = list(await asyncio.gather(*(ask_one(intent) for intent in intents)))
    answers = [answer for answer in asked if answer is not None]
    if not answers:
        return
    await pause_for_tests()

    async def record() -> None:
        async with db.transaction() as tx:
            # Plain renewals are recorded set-based; whatever else is recorded one at a time.
            for intent, result in await renewal_batch.finish(tx, billing, answers, opened or {}):
                await finish_in(tx, billing, intent["id"], result, intent["continuation"].get("customer_ref"))

    try:
        await record_retrying(record)
    except Exception as exc:
        if is_unavailable(exc):
            raise
        # One intent's record failed in a way that is not the database going away: record each
        # alone, so the others are not held back by it (a failing one is left to the reconciler).
        log.warning("recording %d charges together failed (%r); recording each alone", len(answers), exc)
        for intent, result in answers:
            try:
                await record_retrying(_recorder(db, billing, intent, result))
            except Exception as one:
                if is_unavailable(one):
                    raise
                log.warning("charge %s left processing (%r)", intent["id"], one)


def _recorder(
    db: Database, billing: Billing, intent: dict[str, Any], result: ChargeResult
) -> Callable[[], Awaitable[Any]]:
    return lambda: finish(db, billing, intent["id"], result, intent["continuation"].get("customer_ref"))


async def record_retrying(record: Callable[[], Awaitable[Any]], attempts: int = 5) -> Any:
    """Record a provider's answer, trying again while the database is briefly unavailable (a
    restart, a dropped connection): the money has moved, so the answer is worth keeping now
    rather than at the reconciler's next look."""
    for attempt in range(attempts):
        try:
            return await record()
        except Exception as exc:
            if attempt == attempts - 1 or not is_unavailable(exc):
                raise
            await asyncio.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


async def run(db: Database, call: Call, flow: str, args: dict[str, Any], subject: str) -> Any:
    """Run `flow` under the charge step (see the module's docstring); returns the flow's value."""
    call = dataclasses.replace(call, step=Step(now=call.wall_now(), local=is_local(call)))
    assert call.step is not None
    while True:
        async with db.transaction() as tx:
            outcome = await _pass(tx, call, flow, args)
            if isinstance(outcome, ChargeNeeded):
                intent = await prepare_charge(tx, call, flow, args, outcome, subject)
        if isinstance(outcome, Done):
            return outcome.value
        if isinstance(outcome, Ask):
            call.step.answers[outcome.key] = await outcome.question()
            continue
        value = await settle(db, call.billing, intent)
        if value is None:  # the provider decides later, or someone else recorded it meanwhile
            raise ServiceUnavailable(
                f"payment intent {intent['id']!r} is processing; retrieve it (or what it pays for) later",
                code="payment_processing",
            )
        return value

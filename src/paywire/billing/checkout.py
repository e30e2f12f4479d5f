"""Checkout sessions: `open` → `complete` (paid, or a trial started) or `expired`.

Confirming charges first and writes after, so the events follow the contract's order: a
subscription is created already `active` because its first payment has succeeded. A declined
card leaves the session open with its failed payment intent, which the next attempt reuses.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import charge_step, clocks, customers, items, jobs, money, payments, subscriptions
from paywire.billing.declines import Declinable, Declined, check_payment_method
from paywire.billing.runtime import Call
from paywire.billing.schemas import CheckoutSessionCreate
from paywire.billing.statuses import CheckoutPaymentStatus, CheckoutSessionStatus, NftMintStatus, PaymentIntentStatus
from paywire.db.engine import Tx
from paywire.db.schema import checkout_sessions, payment_intents
from paywire.db.schema import customers as customers_table
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.events.log import NewEvent, append
from paywire.ids import new_id
from paywire.minting.base import MintError, MintRequest
from paywire.providers.base import ProviderCustomer
from paywire.schemas import CustomerCreate

DEFAULT_LIFETIME = 24 * 3600
MIN_LIFETIME = 30 * 60


def _render_line(line: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "price_id": line["price_id"],
        "quantity": line["quantity"],
        "unit_amount": money.format_amount(int(line["unit_amount"]), currency),
        "amount_total": money.format_amount(int(line["unit_amount"]) * int(line["quantity"]), currency),
        "currency": currency,
    }


def render(m: Any) -> dict[str, Any]:
    currency = m["currency"]
    return {
        **objects.common_fields(m, "checkout_session"),
        "mode": m["mode"],
        "status": m["status"],
        "payment_status": m["payment_status"],
        "customer_id": m["customer_id"],
        "customer_email": m["customer_email"],
        "line_items": [_render_line(line, currency) for line in m["line_items"]],
        "currency": currency,
        "amount_subtotal": money.format_amount(int(m["amount_subtotal"]), currency),
        "amount_total": money.format_amount(int(m["amount_total"]), currency),
        "subscription_data": {"trial_period_days": m["trial_period_days"]} if m["mode"] == "subscription" else None,
        "success_url": m["success_url"],
        "cancel_url": m["cancel_url"],
        "expires_at": m["expires_at"],
        "payment_intent_id": m["payment_intent_id"],
        "subscription_id": m["subscription_id"],
        "invoice_id": m["invoice_id"],
        "payment_method": m["payment_method"],
        "nft_mint_settings": {"enabled": m["nft_mint_enabled"]},
        "nft_mint_status": m["nft_mint_status"],
        "nft_mint_details": m["nft_mint_details"],
        "completed_at": m["completed_at"],
        "test_clock_id": m["test_clock_id"],
        "url": m.get("url"),
        "locale": m.get("locale"),
        "payment_link_id": m.get("payment_link_id"),
    }


async def create(
    tx: Tx,
    call: Call,
    params: CheckoutSessionCreate,
    *,
    pages_url: str | None = None,
    payment_link_id: str | None = None,
) -> dict[str, Any]:
    """`pages_url`: the public base URL of the hosted pages; the session's `url` is its page."""
    clock_id = None
    if params.customer_id is not None:
        try:
            customer = await objects.fetch(tx.conn, customers_table, params.customer_id, call.livemode)
        except NotFound as exc:
            raise InvalidRequest(exc.message, param="customer_id") from None
        clock_id = customer["test_clock_id"]
    priced = await items.price_items(
        tx.conn, [(i.price_id, i.quantity) for i in params.line_items], call.livemode, "line_items"
    )
    trial_days = None
    if params.mode == "payment":
        for index, item in enumerate(priced):
            if item.price["type"] != "one_time":
                raise InvalidRequest(
                    "mode payment takes one_time prices; use mode subscription for recurring ones",
                    param=f"line_items.{index}.price_id",
                )
        if params.subscription_data is not None:
            raise InvalidRequest("subscription_data needs mode subscription", param="subscription_data")
    else:
        recurrence = items.recurrence(priced, "line_items")
        data = params.subscription_data
        explicit = data.trial_period_days if data is not None else None
        trial_days = explicit if explicit is not None else recurrence.trial_period_days
    now = await clocks.now_for(tx.conn, call, clock_id)
    expires_at = params.expires_at if params.expires_at is not None else int(now) + DEFAULT_LIFETIME
    if not int(now) + MIN_LIFETIME <= expires_at <= int(now) + DEFAULT_LIFETIME:
        raise InvalidRequest("expires_at must be 30 minutes to 24 hours from now", param="expires_at")
    subtotal = sum(item.amount for item in priced)
    session_id = new_id("cs")
    row = {
        "id": session_id,
        "livemode": call.livemode,
        "mode": params.mode,
        "status": CheckoutSessionStatus.OPEN,
        "payment_status": CheckoutPaymentStatus.UNPAID,
        "customer_id": params.customer_id,
        "customer_email": params.customer_email,
        "line_items": [
            {"price_id": i.price["id"], "quantity": i.quantity, "unit_amount": int(i.price["unit_amount"])}
            for i in priced
        ],
        "currency": priced[0].price["currency"],
        "amount_subtotal": subtotal,
        "amount_total": 0 if trial_days else subtotal,  # a trial charges nothing at checkout
        "trial_period_days": trial_days,
        "subscription_metadata": (params.subscription_data.metadata if params.subscription_data else None) or {},
        "success_url": params.success_url,
        "cancel_url": params.cancel_url,
        "expires_at": expires_at,
        "payment_intent_id": None,
        "subscription_id": None,
        "invoice_id": None,
        "payment_method": None,
        "nft_mint_enabled": bool(params.nft_mint_settings and params.nft_mint_settings.enabled),
        "nft_mint_status": None,
        "nft_mint_details": None,
        "test_clock_id": clock_id,
        "completed_at": None,
        "url": f"{pages_url}/pay/checkout/{session_id}" if pages_url else None,
        "locale": params.locale or "auto",
        "payment_link_id": payment_link_id,
        "metadata": params.metadata or {},
        "created": int(now),
        "updated": int(now),
    }
    for url, param in ((params.success_url, "success_url"), (params.cancel_url, "cancel_url")):
        if url is not None and not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"{param} must be an http(s) URL", param=param)
    await tx.conn.execute(checkout_sessions.insert().values(**row))
    await jobs.schedule(
        tx, kind=jobs.CHECKOUT_EXPIRE, object_id=row["id"], due=expires_at, livemode=call.livemode,
        clock_id=clock_id, now=now,
    )  # fmt: skip
    session = render(row)
    await append(
        tx, [NewEvent("checkout.session.created", session)], livemode=call.livemode, now=now, request=call.request
    )
    return session


async def _load(tx: Tx, session_id: str, livemode: bool | None = None) -> dict[str, Any]:
    query = sa.select(checkout_sessions).where(checkout_sessions.c.id == session_id)
    if livemode is not None:
        query = query.where(checkout_sessions.c.livemode == livemode)
    row = (await tx.conn.execute(query.with_for_update())).mappings().first()
    if row is None:
        raise NotFound(f"no such checkout session: {session_id!r}", param="id")
    return dict(row)


async def _save(tx: Tx, before: dict[str, Any], after: dict[str, Any], now: float) -> None:
    changed = {k: v for k, v in after.items() if before.get(k) != v and k not in ("seq", "id")}
    if changed:
        after["updated"] = changed["updated"] = int(now)
        await tx.conn.execute(
            checkout_sessions.update().where(checkout_sessions.c.id == before["id"]).values(**changed)
        )


async def _session_intent(tx: Tx, call: Call, session: dict[str, Any], now: float) -> tuple[dict[str, Any], bool]:
    """The session's payment intent: the one a declined attempt left, or a new one."""
    if session["payment_intent_id"]:
        row = (
            (
                await tx.conn.execute(
                    sa.select(payment_intents).where(payment_intents.c.id == session["payment_intent_id"])
                )
            )
            .mappings()
            .first()
        )
        if row is not None and row["status"] in (
            PaymentIntentStatus.REQUIRES_PAYMENT_METHOD,
            PaymentIntentStatus.REQUIRES_ACTION,
            PaymentIntentStatus.PROCESSING,
        ):
            return dict(row), False
    intent = payments.build(
        call=call,
        livemode=call.livemode,
        amount=session["amount_total"],
        currency=session["currency"],
        customer_id=session["customer_id"],
        checkout_session_id=session["id"],
        description=f"Checkout {session['id']}",
        clock_id=session["test_clock_id"],
        now=now,
    )
    return intent, True


async def _guest_provider_customer(call: Call, session: dict[str, Any]) -> str | None:
    """A subscription checkout without a customer: the provider's customer its card is saved to
    and charged with, made before the charge (keyed by the session: our customer is only made
    once the payment succeeded), so renewals can charge the card off-session. None for a
    payment, a session with a customer, or a provider without customers (the test provider)."""
    if session["mode"] != "subscription" or session["customer_id"] is not None:
        return None
    provider = call.provider
    guest = ProviderCustomer(session["id"], session["customer_email"], None)
    ref: str | None = await charge_step.ask(call, f"customer:{session['id']}", lambda: provider.ensure_customer(guest))
    if ref is not None and call.step is not None:
        call.step.customer_ref = ref
    return ref


async def confirm(tx: Tx, call: Call, session_id: str, payment_method: str) -> Declinable[dict[str, Any]]:
    """Pay (or, for a trial, save the card) and complete the session. Run it under the charge
    step (`charging.run`, flow `checkout.confirm`): the provider is then called between
    transactions. A payment needing the payer's action (3-D Secure) is answered like a decline
    whose payment intent is `requires_action` with its `next_action`; confirming again once the
    payer has authenticated continues the same charge."""
    before = await _load(tx, session_id, call.livemode)
    if before["status"] != CheckoutSessionStatus.OPEN:
        raise StateError(f"checkout session {session_id!r} is {before['status']}")
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    if now >= before["expires_at"]:
        raise StateError(f"checkout session {session_id!r} has expired", code="checkout_session_expired")
    guest_ref = await _guest_provider_customer(call, before)
    # Nothing to charge (a trial): saving the card is the confirmation, so a card that cannot be
    # saved is declined here. Otherwise the charge itself decides.
    await check_payment_method(
        call, payment_method, "payment_method", saving=before["amount_total"] == 0,
        tx=tx, customer_id=before["customer_id"], customer_ref=guest_ref,
    )  # fmt: skip
    session = {**before, "payment_method": payment_method}
    events: list[NewEvent] = []
    intent: dict[str, Any] | None = None
    if before["amount_total"] > 0:
        intent, is_new = await _session_intent(tx, call, before, now)
        if is_new:
            events.append(NewEvent("payment_intent.created", payments.render(intent)))
        intent = await payments.charge(call, intent, payment_method, now)
        await payments.write(tx, intent)
        session["payment_intent_id"] = intent["id"]
        if intent["status"] != PaymentIntentStatus.SUCCEEDED:
            await _save(tx, before, session, now)
            events.append(NewEvent("payment_intent.payment_failed", payments.render(intent)))
            await append(tx, events, livemode=call.livemode, now=now, request=call.request)
            declined = Declined(intent["last_payment_error"], payments.render(intent))
            return Declinable(render(session), declined)

    if session["mode"] == "subscription" and session["customer_id"] is None:
        # At the session's time: a session on a test clock makes its customer at the clock's time.
        customer = await customers.insert(tx, call, CustomerCreate(email=session["customer_email"]), now)
        session["customer_id"] = customer["id"]
        if guest_ref is not None:  # the card is saved there: renewals charge it off-session
            await tx.conn.execute(
                customers_table.update()
                .where(customers_table.c.id == customer["id"])
                .values(provider_customer_ref=guest_ref)
            )
    if session["mode"] == "payment":
        assert intent is not None
        events.append(NewEvent("payment_intent.succeeded", payments.render(intent)))
    else:
        priced = await items.price_items(
            tx.conn, [(i["price_id"], i["quantity"]) for i in session["line_items"]], call.livemode, "line_items"
        )
        sub, sub_events = await subscriptions.start_from_checkout(
            tx, call, session=session, customer_id=session["customer_id"], priced=priced,
            payment_method=payment_method, paid_intent=intent, now=now,
        )  # fmt: skip
        events.extend(sub_events)
        session.update(subscription_id=sub["id"], invoice_id=sub["latest_invoice_id"])
    session.update(
        status=CheckoutSessionStatus.COMPLETE,
        payment_status=CheckoutPaymentStatus.PAID if intent is not None else CheckoutPaymentStatus.NO_PAYMENT_REQUIRED,
        completed_at=int(now),
        nft_mint_status=NftMintStatus.PENDING if session["nft_mint_enabled"] else None,
    )
    await _save(tx, before, session, now)
    events.append(NewEvent("checkout.session.completed", render(session)))
    await append(tx, events, livemode=call.livemode, now=now, request=call.request)
    if session["nft_mint_enabled"]:
        # Minting is not time-driven: a wall-clock job, run right after this commit by the API
        # (and by any scheduler if this process dies first).
        await jobs.schedule(
            tx, kind=jobs.NFT_MINT, object_id=session["id"], due=int(call.wall_now()),
            livemode=call.livemode, clock_id=None, now=call.wall_now(),
        )  # fmt: skip
    return Declinable(render(session))


async def on_expire(tx: Tx, call: Call, job: Any, now: float) -> None:
    before = await _load(tx, job["object_id"])
    if before["status"] != CheckoutSessionStatus.OPEN:
        return
    after = {**before, "status": CheckoutSessionStatus.EXPIRED}
    await _save(tx, before, after, now)
    if before["payment_intent_id"]:
        await tx.conn.execute(
            payment_intents.update()
            .where(
                payment_intents.c.id == before["payment_intent_id"],
                payment_intents.c.status.not_in(
                    (PaymentIntentStatus.SUCCEEDED, PaymentIntentStatus.PROCESSING)
                ),  # a charge in flight settles itself
            )
            .values(status=PaymentIntentStatus.CANCELED, updated=int(now))
        )
    await append(tx, [NewEvent("checkout.session.expired", render(after))], livemode=call.livemode, now=now)


async def on_mint(tx: Tx, call: Call, job: Any, _wall_now: float) -> None:
    """Mint the session's token with the configured minter; `pending` → `minted` or `error`."""
    before = await _load(tx, job["object_id"])
    if before["nft_mint_status"] != NftMintStatus.PENDING:
        return
    now = await clocks.now_for(tx.conn, call, before["test_clock_id"])
    try:
        details = await call.billing.minter.mint(tx, MintRequest(render(before), call.livemode, now))
        after, event = {**before, "nft_mint_status": NftMintStatus.MINTED, "nft_mint_details": details}, "nft_minted"
    except MintError as exc:
        after = {**before, "nft_mint_status": NftMintStatus.ERROR, "nft_mint_details": {"error": str(exc)}}
        event = "nft_mint_failed"
    await _save(tx, before, after, now)
    await append(tx, [NewEvent(f"checkout.session.{event}", render(after))], livemode=call.livemode, now=now)


def listing(livemode: bool, *, customer_id: str | None = None, status: str | None = None) -> sa.Select[Any]:
    query = sa.select(checkout_sessions).where(checkout_sessions.c.livemode == livemode)
    if customer_id:
        query = query.where(checkout_sessions.c.customer_id == customer_id)
    if status:
        query = query.where(checkout_sessions.c.status == status)
    return query

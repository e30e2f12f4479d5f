"""`/pay/portal`: the customer portal. A portal session's one-time URL (`/pay/portal/open/{token}`)
sets an HttpOnly cookie bound to one customer and mode; every page and action reads and changes
only that customer's objects, through the engine's own functions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from paywire.billing import clocks, portal_sessions, read, subscription_state, subscriptions
from paywire.billing.declines import Declined
from paywire.billing.read import Owner
from paywire.billing.runtime import Billing, Call
from paywire.billing.schemas import SubscriptionItemIn, SubscriptionUpdate
from paywire.billing.statuses import SubscriptionStatus
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.events.log import RequestInfo
from paywire.web.payer import cards
from paywire.web.payer.common import lang_for, page, services_of
from paywire.web.payer.i18n import N_, Lang
from paywire.web.security import check_csrf, is_https

router = APIRouter()

COOKIE = "paywire_portal"

STATUS = {
    "active": (N_("Active"), "ok"), "trialing": (N_("Trial"), "info"), "past_due": (N_("Past due"), "warn"),
    "paused": (N_("Paused"), "muted"), "canceled": (N_("Canceled"), "muted"),
    "incomplete": (N_("Incomplete"), "warn"), "incomplete_expired": (N_("Expired"), "muted"),
    "paid": (N_("Paid"), "ok"), "open": (N_("Open"), "info"), "void": (N_("Void"), "muted"),
    "uncollectible": (N_("Uncollectible"), "bad"), "draft": (N_("Draft"), "muted"),
    "succeeded": (N_("Succeeded"), "ok"), "requires_payment_method": (N_("Failed"), "bad"),
    "processing": (N_("Processing"), "info"),
}  # fmt: skip
DONE = {
    "canceled": N_("Your subscription will end at the end of the current period."),
    "kept": N_("Your subscription will continue."),
    "paused": N_("Your subscription is paused. You will not be charged while it is paused."),
    "resumed": N_("Your subscription has resumed."),
    "changed": N_("Your plan has changed."),
}


@dataclasses.dataclass(frozen=True)
class Portal:
    owner: Owner
    lang: Lang
    return_url: str | None


@dataclasses.dataclass(frozen=True)
class _Frozen:
    at: float

    def now(self) -> float:
        return self.at


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _message(
    request: Request, lang: Lang, status: int, title: str, message: str, livemode: bool | None = None, **context: Any
) -> Response:
    values = {"title": lang.gettext(title), "message": lang.gettext(message), "tone": "muted", **context}
    return page(request, "pay/message.html", lang, values, status_code=status, livemode=livemode)


async def _portal(request: Request) -> Portal | Response:
    services = services_of(request)
    async with services.db.read() as conn:
        row = await portal_sessions.from_cookie(conn, request.cookies.get(COOKIE), services.now())
    if row is None:
        return _message(
            request, lang_for(request, None), 401, N_("Your portal session has ended"),
            N_("Open the customer portal again from the business's website."),
        )  # fmt: skip
    return Portal(Owner(row["customer_id"], bool(row["livemode"])), lang_for(request, row["locale"]), row["return_url"])


def _plan(lang: Lang, price: Mapping[Any, Any]) -> str:
    """ "Pro ($19.99 / month)": a price as the payer knows it."""
    name = f"{price['product_name']} \u00b7 {price['nickname']}" if price["nickname"] else str(price["product_name"])
    if price["type"] != "recurring":
        return name
    per = lang.interval(price["recurring_interval"], int(price["recurring_interval_count"]))
    amount = lang.gettext("%(amount)s / %(interval)s") % {
        "amount": lang.money(int(price["unit_amount"]), price["currency"]),
        "interval": per,
    }
    return f"{name} ({amount})"


def _status(lang: Lang, status: str) -> dict[str, str]:
    label, kind = STATUS.get(status, (status, "muted"))
    return {"label": lang.gettext(label), "kind": kind}


def _call(request: Request, billing: Billing, livemode: bool) -> Call:
    return billing.call(livemode, RequestInfo(id=getattr(request.state, "request_id", None)))


@router.get("/portal/open/{token}")
async def open_portal(request: Request, token: str) -> Response:
    """The portal session's one-time URL: its first visit gets the portal cookie."""
    services = services_of(request)
    async with services.db.transaction() as tx:
        outcome, row, cookie = await portal_sessions.open_once(tx, token, services.now())
    lang = lang_for(request, row["locale"] if row is not None else None)
    if outcome == "missing":
        return _message(request, lang, 404, N_("Page not found"), N_("This link is not valid. Check the address."))
    if outcome != "opened" or cookie is None or row is None:
        title = N_("This link has already been used") if outcome == "used" else N_("This link has expired")
        return _message(
            request, lang, 410, title, N_("For your security, portal links work once. Ask for a new link."),
            livemode=bool(row["livemode"]) if row is not None else None,
            back_url=row["return_url"] if row is not None else None,
        )  # fmt: skip
    response = _see_other(f"{_base(request)}/portal")
    response.set_cookie(
        COOKIE, cookie, max_age=portal_sessions.COOKIE_LIFETIME, httponly=True, samesite="lax",
        secure=is_https(request), path=f"{_base(request)}/portal",
    )  # fmt: skip
    return response


async def _subscription_view(conn: Any, lang: Lang, sub: dict[str, Any]) -> dict[str, Any]:
    by_id = await read.named_prices(conn, [i["price_id"] for i in sub["items"]], sub["livemode"])
    names = []
    for item in sub["items"]:
        price = by_id.get(item["price_id"])
        name = price["product_name"] if price is not None else item["price_id"]
        if price is not None and price["nickname"]:
            name = f"{name} \u00b7 {price['nickname']}"
        names.append(name if int(item["quantity"]) == 1 else f"{item['quantity']} \u00d7 {name}")
    recurring = sum(int(i["unit_amount"]) * int(i["quantity"]) for i in sub["items"])
    per = lang.interval(sub["interval"], int(sub["interval_count"]))
    live = sub["status"] in subscription_state.LIVE
    next_amount = max(recurring + await read.pending_amount(conn, sub["id"]), 0)
    alternatives = await read.alternative_prices(conn, sub)
    return {
        "id": sub["id"],
        "plan": ", ".join(names),
        "price": lang.gettext("%(amount)s / %(interval)s") % {"amount": lang.money(recurring, sub["currency"]),
                                                                "interval": per},
        "status": _status(lang, sub["status"]),
        "trial_end": lang.date(sub["trial_end"]) if sub["status"] == SubscriptionStatus.TRIALING else None,
        "renews": lang.date(sub["current_period_end"]) if live and not sub["cancel_at_period_end"] else None,
        "next_amount": lang.money(next_amount, sub["currency"]),
        "cancels": lang.date(sub["cancel_at"]) if sub["cancel_at_period_end"] else None,
        "paused_since": lang.date(sub["paused_at"]) if sub["status"] == SubscriptionStatus.PAUSED else None,
        "can_cancel": live and not sub["cancel_at_period_end"],
        "can_undo": live and bool(sub["cancel_at_period_end"]),
        "can_pause": sub["status"] in subscription_state.PAUSABLE and not sub["cancel_at_period_end"],
        "can_resume": sub["status"] == SubscriptionStatus.PAUSED,
        "can_change": bool(alternatives) and not sub["cancel_at_period_end"],
    }  # fmt: skip


@router.get("/portal")
async def portal_home(request: Request) -> Response:
    portal = await _portal(request)
    if isinstance(portal, Response):
        return portal
    lang, owner = portal.lang, portal.owner
    async with services_of(request).db.read() as conn:
        customer = await read.portal_customer(conn, owner)
        subs = [await _subscription_view(conn, lang, s) for s in await read.portal_subscriptions(conn, owner)]
        invoices = [
            {
                "id": i["id"], "date": lang.date(i["created"]), "total": lang.money(int(i["total"]), i["currency"]),
                "status": _status(lang, i["status"]),
            }
            for i in await read.portal_invoices(conn, owner)
        ]  # fmt: skip
        payments = []
        for p in await read.portal_payments(conn, owner):
            card = cards.describe(p["payment_method"])
            payments.append(
                {
                    "date": lang.date(p["created"]),
                    "amount": lang.money(int(p["amount"]), p["currency"]),
                    "refunded": lang.money(int(p["amount_refunded"]), p["currency"]) if p["amount_refunded"] else None,
                    "status": _status(lang, p["status"]),
                    "card": card,
                }
            )
        refunds = [
            {"date": lang.date(r["created"]), "amount": lang.money(int(r["amount"]), r["currency"]),
             "status": _status(lang, r["status"])}
            for r in await read.portal_refunds(conn, owner)
        ]  # fmt: skip
    done = request.query_params.get("done")
    context = {
        "customer": customer,
        "subscriptions": subs,
        "invoices": invoices,
        "payments": payments,
        "refunds": refunds,
        "notice": lang.gettext(DONE[done]) if done in DONE else None,
        "error": lang.gettext("Your card was declined. Your plan did not change.")
        if request.query_params.get("declined") else None,
        "return_url": portal.return_url,
    }  # fmt: skip
    return page(request, "pay/portal/home.html", lang, context, livemode=owner.livemode)


async def _act(request: Request, subscription_id: str, action: str) -> Response:
    form = await request.form()
    check_csrf(request, form)
    portal = await _portal(request)
    if isinstance(portal, Response):
        return portal
    services = services_of(request)
    async with services.db.read() as conn:
        await read.portal_subscription(conn, portal.owner, subscription_id)  # the owner's, or a 404
    call = _call(request, services.billing, portal.owner.livemode)
    done = action
    try:
        async with services.db.transaction() as tx:
            if action == "canceled":
                await subscriptions.cancel(tx, call, subscription_id, at_period_end=True)
            elif action == "kept":
                (await subscriptions.update(
                    tx, call, subscription_id, SubscriptionUpdate(cancel_at_period_end=False))).unwrap()  # fmt: skip
            elif action == "paused":
                await subscriptions.pause(tx, call, subscription_id)
            else:
                await subscriptions.resume(tx, call, subscription_id)
    except StateError:  # changed meanwhile (another tab): the portal shows how it is now
        done = ""
    return _see_other(f"{_base(request)}/portal" + (f"?done={done}" if done else ""))


@router.post("/portal/subscriptions/{subscription_id}/cancel")
async def cancel(request: Request, subscription_id: str) -> Response:
    return await _act(request, subscription_id, "canceled")


@router.post("/portal/subscriptions/{subscription_id}/keep")
async def keep(request: Request, subscription_id: str) -> Response:
    return await _act(request, subscription_id, "kept")


@router.post("/portal/subscriptions/{subscription_id}/pause")
async def pause(request: Request, subscription_id: str) -> Response:
    return await _act(request, subscription_id, "paused")


@router.post("/portal/subscriptions/{subscription_id}/resume")
async def resume(request: Request, subscription_id: str) -> Response:
    return await _act(request, subscription_id, "resumed")


def _preview_view(lang: Lang, sub: dict[str, Any], preview: read.Preview, names: dict[str, str]) -> dict[str, Any]:
    currency = sub["currency"]
    lines = []
    for line in preview.lines:
        name = names.get(line["price_id"], line["price_id"])
        text = N_("Unused time on %(plan)s") if int(line["amount"]) < 0 else N_("Remaining time on %(plan)s")
        lines.append({"description": lang.gettext(text) % {"plan": name},
                      "amount": lang.money(int(line["amount"]), currency)})  # fmt: skip
    per = lang.interval(sub["interval"], int(sub["interval_count"]))
    return {
        "lines": lines,
        "due_now": lang.money(preview.due_now, currency),
        "due_now_minor": preview.due_now,
        "credit": lang.money(preview.credit, currency) if preview.credit else None,
        "new_price": lang.gettext("%(amount)s / %(interval)s")
        % {"amount": lang.money(preview.new_recurring, currency), "interval": per},
        "next_date": lang.date(
            sub["trial_end"] if sub["status"] == SubscriptionStatus.TRIALING else sub["current_period_end"]
        ),
    }


async def _change_context(request: Request, portal: Portal, subscription_id: str, price_id: str | None,
                          conn: Any, now: float) -> dict[str, Any]:  # fmt: skip
    lang = portal.lang
    sub = await read.portal_subscription(conn, portal.owner, subscription_id)
    alternatives = await read.alternative_prices(conn, sub)
    per = lang.interval(sub["interval"], int(sub["interval_count"]))

    def label(p: Mapping[Any, Any]) -> str:
        name = f"{p['product_name']} \u00b7 {p['nickname']}" if p["nickname"] else str(p["product_name"])
        amount = lang.money(int(p["unit_amount"]) * int(sub["items"][0]["quantity"]), sub["currency"])
        return f"{name}: " + lang.gettext("%(amount)s / %(interval)s") % {"amount": amount, "interval": per}

    current = await read.named_prices(conn, [sub["items"][0]["price_id"]], sub["livemode"])
    names = {str(p["id"]): _plan(lang, p) for p in [*current.values(), *alternatives]}
    chosen = next((p for p in alternatives if p["id"] == price_id), None)
    preview = None
    if chosen is not None:
        preview = _preview_view(lang, sub, read.preview_change(sub, chosen, now), names)
    return {
        "sub": await _subscription_view(conn, lang, sub),
        "options": [{"id": p["id"], "label": label(p)} for p in alternatives],
        "chosen": chosen["id"] if chosen is not None else None,
        "preview": preview,
        "trialing": sub["status"] == SubscriptionStatus.TRIALING,
    }


@router.get("/portal/subscriptions/{subscription_id}/change")
async def change_form(request: Request, subscription_id: str) -> Response:
    portal = await _portal(request)
    if isinstance(portal, Response):
        return portal
    services = services_of(request)
    async with services.db.read() as conn:
        sub = await read.portal_subscription(conn, portal.owner, subscription_id)
        now = await clocks.now_for(conn, _call(request, services.billing, portal.owner.livemode), sub["test_clock_id"])
        context = await _change_context(
            request, portal, subscription_id, request.query_params.get("price_id"), conn, now
        )
    return page(request, "pay/portal/change.html", portal.lang, context, livemode=portal.owner.livemode)


@router.post("/portal/subscriptions/{subscription_id}/change")
async def change(request: Request, subscription_id: str) -> Response:
    """Switch plans, if what is charged now is still what the payer saw in the preview."""
    form = await request.form()
    check_csrf(request, form)
    portal = await _portal(request)
    if isinstance(portal, Response):
        return portal
    services = services_of(request)
    price_id, expected = form.get("price_id"), form.get("due_now")
    # One instant for the check and the change: the engine prorates to the second.
    frozen = dataclasses.replace(services.billing, clock=_Frozen(services.billing.clock.now()))
    call = _call(request, frozen, portal.owner.livemode)
    try:
        async with services.db.transaction() as tx:
            sub = await subscription_state.load(tx, subscription_id, portal.owner.livemode)
            if sub["customer_id"] != portal.owner.customer_id:
                raise NotFound(f"no such subscription: {subscription_id!r}")
            alternatives = await read.alternative_prices(tx.conn, sub)
            chosen = next((p for p in alternatives if p["id"] == price_id), None)
            if chosen is None:
                raise InvalidRequest("choose one of the plans shown")
            now = await clocks.now_for(tx.conn, call, sub["test_clock_id"])
            preview = read.preview_change(sub, chosen, now)
            if str(preview.due_now) != expected:
                raise _Moved()
            item = sub["items"][0]
            params = SubscriptionUpdate(
                items=[SubscriptionItemIn(id=item["id"], price_id=chosen["id"], quantity=int(item["quantity"]))]
            )
            outcome = await subscriptions.update(tx, call, subscription_id, params)
    except _Moved:  # time moved the proration: show the new amount and ask again
        return _see_other(f"{_base(request)}/portal/subscriptions/{subscription_id}/change?price_id={price_id}")
    except (InvalidRequest, StateError):
        return _see_other(f"{_base(request)}/portal/subscriptions/{subscription_id}/change")
    except Declined:
        return _see_other(f"{_base(request)}/portal?declined=1")
    if outcome.declined is not None:
        return _see_other(f"{_base(request)}/portal?declined=1")
    return _see_other(f"{_base(request)}/portal?done=changed")


class _Moved(Exception):
    pass


@router.get("/portal/invoices/{invoice_id}")
async def invoice_page(request: Request, invoice_id: str) -> Response:
    portal = await _portal(request)
    if isinstance(portal, Response):
        return portal
    lang = portal.lang
    async with services_of(request).db.read() as conn:
        invoice = await read.portal_invoice(conn, portal.owner, invoice_id)
        customer = await read.portal_customer(conn, portal.owner)
        price_ids = [str(line["price_id"]) for line in invoice["lines"] if line.get("price_id")]
        by_id = await read.named_prices(conn, price_ids, portal.owner.livemode)
    currency = invoice["currency"]
    lines = []
    for line in invoice["lines"]:
        price = by_id.get(str(line.get("price_id")))
        plan = _plan(lang, price) if price is not None else ""
        if line.get("proration"):
            text = N_("Unused time on %(plan)s") if int(line["amount"]) < 0 else N_("Remaining time on %(plan)s")
            description = lang.gettext(text) % {"plan": plan}
        elif price is not None:
            description = f"{line.get('quantity') or 1} \u00d7 {plan}"
        else:
            description = lang.gettext("Credit from an earlier invoice")
        period = line.get("period") or {}
        lines.append(
            {
                "description": description,
                "period": f"{lang.date(period.get('start'))} \u2013 {lang.date(period.get('end'))}" if period else "",
                "amount": lang.money(int(line["amount"]), currency),
            }
        )
    context = {
        "invoice": invoice,
        "customer": customer,
        "lines": lines,
        "status": _status(lang, invoice["status"]),
        "created": lang.date(invoice["created"]),
        "paid_at": lang.date(invoice["paid_at"]) if invoice["paid_at"] else None,
        "period": f"{lang.date(invoice['period_start'])} \u2013 {lang.date(invoice['period_end'])}",
        "subtotal": lang.money(int(invoice["subtotal"]), currency),
        "total": lang.money(int(invoice["total"]), currency),
        "amount_paid": lang.money(int(invoice["amount_paid"]), currency),
        "amount_due": lang.money(int(invoice["amount_due"]) - int(invoice["amount_paid"]), currency),
    }
    return page(request, "pay/portal/invoice.html", lang, context, livemode=portal.owner.livemode)

"""`/pay/checkout/{id}`: the hosted checkout page, and its form's POST (POST-redirect-GET)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from paywire.billing.declines import Declined
from paywire.billing.statuses import CheckoutSessionStatus, PaymentIntentStatus
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.web.payer import cards, checkout_page
from paywire.web.payer.common import lang_for, page, services_of
from paywire.web.payer.i18n import Lang
from paywire.web.payer.pay import load_session, pay, set_email
from paywire.web.security import check_csrf

router = APIRouter()

# A payment method made by the provider's script in the browser (Stripe: `pm_…`).
_PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,200}")


async def _session(request: Request, session_id: str) -> dict[str, Any]:
    session = await load_session(services_of(request), session_id)
    if session is None:
        raise NotFound(f"no such checkout session: {session_id!r}")
    return session


def _page_url(request: Request, session: dict[str, Any], query: str = "") -> str:
    return f"{request.scope.get('root_path', '')}/checkout/{session['id']}{query}"


def _after_payment(request: Request, session: dict[str, Any]) -> str:
    """Where a paid session sends the payer: its `success_url` (with `{CHECKOUT_SESSION_ID}`),
    else the built-in "Payment complete" page."""
    if session["status"] == CheckoutSessionStatus.COMPLETE and session["success_url"]:
        return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
    return _page_url(request, session)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _asks_email(session: dict[str, Any]) -> bool:
    return session["customer_id"] is None and not session["customer_email"]


async def _checkout_page(
    request: Request,
    session: dict[str, Any],
    lang: Lang,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
    action: dict[str, str] | None = None,
) -> Response:
    services = services_of(request)
    livemode = bool(session["livemode"])
    form = checkout_page.payment_form(services, livemode)
    lines = await checkout_page.line_items(services, session, lang)
    recurring = checkout_page.recurring_summary(lines, session, lang)
    context = {
        "session": session,
        "lines": lines,
        "total": lang.money(int(session["amount_total"]), session["currency"]),
        "subtotal": lang.money(int(session["amount_subtotal"]), session["currency"]),
        "recurring": recurring,
        "trial": checkout_page.trial_summary(session, recurring, lang),
        "ask_email": _asks_email(session),
        "form_template": form.template,
        "accepts_cards": form.accepts_cards,
        "form_scripts": form.scripts if form.accepts_cards else (),
        "provider": form.context,
        "authenticate": action,  # 3-D Secure: the page's script runs the provider's next action
        "errors": {field: lang.gettext(cards.ERRORS[code]) for field, code in (errors or {}).items()},
        "values": values or {},
        "form_error": form_error,
        "action": _page_url(request, session),
        "button": lang.gettext("Start trial") if int(session["amount_total"]) == 0 else lang.gettext("Pay"),
        "card_messages": {code: lang.gettext(message) for code, message in cards.ERRORS.items()},
    }
    return page(request, "pay/checkout.html", lang, context, status_code=status_code, csp=form.csp, livemode=livemode)


async def _closed_page(request: Request, session: dict[str, Any], lang: Lang, now: float) -> Response:
    """A complete or expired session: a page saying so, never a form."""
    livemode = bool(session["livemode"])
    if session["status"] == CheckoutSessionStatus.COMPLETE:
        paid_with = cards.describe(session["payment_method"])
        context = {
            "session": session,
            "total": lang.money(int(session["amount_total"]), session["currency"]),
            "paid_with": paid_with,
            "trial": session["payment_status"] == "no_payment_required",
            "return_url": _after_payment(request, session) if session["success_url"] else None,
        }
        return page(request, "pay/complete.html", lang, context, livemode=livemode)
    context = {
        "title": lang.gettext("This checkout has expired"),
        "message": lang.gettext("Nothing was charged. Go back and start again to pay."),
        "tone": "muted",
        "back_url": session["cancel_url"],
    }
    return page(request, "pay/message.html", lang, context, status_code=410, livemode=livemode)


def _processing_page(request: Request, session: dict[str, Any], lang: Lang) -> Response:
    """A payment the provider has not answered yet: no form; the page reloads itself (a meta
    refresh, no script) until the session completes or the payment fails."""
    context = {
        "title": lang.gettext("Your payment is processing"),
        "message": lang.gettext("This page updates by itself. Do not pay again."),
        "tone": "muted",
        "refresh": 3,
    }
    return page(request, "pay/message.html", lang, context, livemode=bool(session["livemode"]))


@router.get("/checkout/{session_id}")
async def checkout_get(request: Request, session_id: str) -> Response:
    session = await _session(request, session_id)
    lang = lang_for(request, session["locale"])
    now = await checkout_page.session_now(services_of(request), session)
    if session["status"] == CheckoutSessionStatus.COMPLETE or checkout_page.is_expired(session, now):
        return await _closed_page(request, session, lang, now)
    if await checkout_page.intent_status(services_of(request), session) == PaymentIntentStatus.PROCESSING:
        return _processing_page(request, session, lang)
    form_error = None
    if request.query_params.get("declined"):
        form_error = await checkout_page.decline_message(services_of(request), session, lang)
    action = None
    if request.query_params.get("authenticate"):
        action = await checkout_page.pending_action(services_of(request), session)
    return await _checkout_page(request, session, lang, form_error=form_error, action=action)


@router.post("/checkout/{session_id}")
async def checkout_post(request: Request, session_id: str) -> Response:
    form = await request.form()
    check_csrf(request, form)
    services = services_of(request)
    session = await _session(request, session_id)
    lang = lang_for(request, session["locale"])
    now = await checkout_page.session_now(services, session)
    if session["status"] != CheckoutSessionStatus.OPEN or checkout_page.is_expired(session, now):
        return _see_other(_after_payment(request, session))  # paid already (second click, other tab)
    if await checkout_page.intent_status(services, session) == PaymentIntentStatus.PROCESSING:
        return _see_other(_page_url(request, session))  # a payment is under way: never a second one

    def field(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    livemode = bool(session["livemode"])
    payment_form = checkout_page.payment_form(services, livemode)
    if not payment_form.accepts_cards:
        return await _checkout_page(request, session, lang, status_code=400)
    errors: dict[str, str] = {}
    email = field("email")
    if _asks_email(session) and not cards.valid_email(email):
        errors["email"] = "email_invalid"
    if payment_form.reads == "payment_method":  # made by the provider's script: no card here
        payment_method = field("payment_method")
        if not _PAYMENT_METHOD.fullmatch(payment_method):
            errors["payment_method"] = "payment_method_missing"
    else:
        card, card_errors = cards.read_card(
            field("card_number"), field("expiry"), field("cvc"), datetime.now(UTC).date()
        )
        errors.update(card_errors)
        payment_method = card.payment_method if card is not None else ""
    if errors:
        # The card number and CVC are never sent back into the page.
        values = {"email": email, "expiry": field("expiry")}
        return await _checkout_page(request, session, lang, errors=errors, values=values, status_code=400)
    if _asks_email(session):
        await set_email(services, session_id, email)
    try:
        outcome = await pay(
            services, session_id, livemode=livemode, payment_method=payment_method,
            request_id=getattr(request.state, "request_id", None),
        )  # fmt: skip
    except StateError:  # paid meanwhile (a concurrent POST) or just expired
        return _see_other(_after_payment(request, await _session(request, session_id)))
    except Declined:  # a card that cannot even be saved (a trial): nothing was written
        return _see_other(_page_url(request, session, "?declined=1"))
    except InvalidRequest:  # the provider does not know this payment method
        values = {"email": email}
        return await _checkout_page(
            request, session, lang, errors={"payment_method": "payment_method_missing"}, values=values,
            status_code=400,
        )  # fmt: skip
    if outcome.declined is not None:
        intent = outcome.declined.payment_intent or {}
        if (
            intent.get("status") == PaymentIntentStatus.REQUIRES_ACTION
        ):  # 3-D Secure: the page authenticates, then posts again
            return _see_other(_page_url(request, session, "?authenticate=1"))
        return _see_other(_page_url(request, session, "?declined=1"))
    return _see_other(_after_payment(request, outcome.value))

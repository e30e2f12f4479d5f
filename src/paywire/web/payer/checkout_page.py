"""What the hosted checkout page shows: the business, each line item, the trial, the total, and
the payment form of the provider that will charge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from paywire.billing import clocks, read
from paywire.billing.statuses import CheckoutSessionStatus, PaymentIntentStatus
from paywire.errors import InvalidRequest
from paywire.services import Services
from paywire.settings import Settings
from paywire.web.payer.i18n import Lang
from paywire.web.security import DEFAULT_CSP, csp_allowing


@dataclass(frozen=True)
class PaymentForm:
    """A provider's payment form: its template partial (under `pay/forms/`), the scripts the
    page loads for it (in order), the page's CSP (a provider whose form loads its own script adds
    its origins here), and what its POST carries: the test card's fields (`card`) or a payment
    method the provider's script made in the browser (`payment_method`, field `payment_method`)."""

    template: str
    csp: str = DEFAULT_CSP
    accepts_cards: bool = True  # False: the form only explains that payments are unavailable
    scripts: tuple[str, ...] = ()
    reads: Literal["card", "payment_method"] = "card"
    context: dict[str, str] = field(default_factory=dict)  # for the partial, e.g. a publishable key


UNAVAILABLE = PaymentForm("pay/forms/unavailable.html", accepts_cards=False)
TEST_CARD = PaymentForm("pay/forms/test_card.html", scripts=("/assets/checkout.js",))

# What Stripe documents for Stripe.js besides its own origin (https://docs.stripe.com/security/guide
# #content-security-policy): its sub-domains, its API, and the 3-D Secure frames.
_STRIPE_DOCUMENTED = {
    "script": ("https://*.js.stripe.com",),
    "frame": ("https://*.js.stripe.com", "https://hooks.stripe.com"),
    "connect": ("https://api.stripe.com",),
}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_form(settings: Settings) -> PaymentForm:
    """Stripe Elements: Stripe.js from `stripe_js_url` (the only third-party script, on this page
    only), a card Element, and a PaymentMethod posted to Paywire; the card never reaches it."""
    if not settings.stripe_publishable_key:
        return UNAVAILABLE
    origin = origin_of(settings.stripe_js_url)
    documented = _STRIPE_DOCUMENTED if origin == "https://js.stripe.com" else {}
    csp = csp_allowing(
        script=(origin, *documented.get("script", ())),
        frame=(origin, *documented.get("frame", ())),
        connect=(origin, *documented.get("connect", ())),
    )
    return PaymentForm(
        "pay/forms/stripe_card.html", csp, scripts=(settings.stripe_js_url, "/assets/stripe_checkout.js"),
        reads="payment_method", context={"publishable_key": settings.stripe_publishable_key},
    )  # fmt: skip


# A provider's name → its form, from the settings.
FORMS: dict[str, Callable[[Settings], PaymentForm]] = {"test": lambda _settings: TEST_CARD, "stripe": stripe_form}


def payment_form(services: Services, livemode: bool) -> PaymentForm:
    """The form of the provider that charges in this mode, keyed by the provider's name."""
    try:
        name = services.billing.call(livemode).provider.name
    except InvalidRequest:  # live mode with no provider: nothing can be charged
        return UNAVAILABLE
    make = FORMS.get(name)
    return make(services.settings) if make is not None else UNAVAILABLE


async def session_now(services: Services, session: dict[str, Any]) -> float:
    """Now, for this session (its test clock's time when it has one)."""
    async with services.db.read() as conn:
        return await clocks.now_for(conn, services.billing.call(bool(session["livemode"])), session["test_clock_id"])


def is_expired(session: dict[str, Any], now: float) -> bool:
    return session["status"] == CheckoutSessionStatus.EXPIRED or (
        session["status"] == CheckoutSessionStatus.OPEN and now >= int(session["expires_at"])
    )


async def line_items(services: Services, session: dict[str, Any], lang: Lang) -> list[dict[str, Any]]:
    ids = [line["price_id"] for line in session["line_items"]]
    async with services.db.read() as conn:
        by_id = await read.named_prices(conn, ids)
    result = []
    for line in session["line_items"]:
        price = by_id.get(line["price_id"])
        unit, quantity, currency = int(line["unit_amount"]), int(line["quantity"]), session["currency"]
        per = None
        if price is not None and price["type"] == "recurring":
            per = lang.interval(price["recurring_interval"], int(price["recurring_interval_count"]))
        name = price["product_name"] if price is not None else line["price_id"]
        if price is not None and price["nickname"]:
            name = f"{name} \u00b7 {price['nickname']}"
        result.append(
            {
                "name": name,
                "quantity": quantity,
                "unit": lang.money(unit, currency),
                "total": lang.money(unit * quantity, currency),
                "per": per,
                "recurring_minor": unit * quantity if per else 0,
            }
        )
    return result


def recurring_summary(lines: list[dict[str, Any]], session: dict[str, Any], lang: Lang) -> str | None:
    """ "$19.99 / month", for a subscription."""
    if session["mode"] != "subscription" or not lines:
        return None
    amount = lang.money(sum(int(line["recurring_minor"]) for line in lines), session["currency"])
    return lang.gettext("%(amount)s / %(interval)s") % {"amount": amount, "interval": lines[0]["per"] or ""}


def trial_summary(session: dict[str, Any], recurring: str | None, lang: Lang) -> str | None:
    """ "7 days free, then $19.99 / month"."""
    days = session["trial_period_days"]
    if session["mode"] != "subscription" or not days or recurring is None:
        return None
    text = lang.ngettext("%(num)d day free, then %(recurring)s", "%(num)d days free, then %(recurring)s", int(days))
    return text % {"num": int(days), "recurring": recurring}


async def intent_status(services: Services, session: dict[str, Any]) -> str | None:
    """The status of the session's payment intent, if it has one (`processing` while a provider
    that confirms asynchronously has not answered yet)."""
    if not session["payment_intent_id"]:
        return None
    async with services.db.read() as conn:
        return await read.intent_status(conn, session["payment_intent_id"])


async def pending_action(services: Services, session: dict[str, Any]) -> dict[str, str] | None:
    """The payer's step a payment is waiting for (3-D Secure): the provider's `client_secret` and
    the payment method, for the page's script; None unless the intent `requires_action`."""
    if not session["payment_intent_id"]:
        return None
    async with services.db.read() as conn:
        row = await read.intent_action(conn, session["payment_intent_id"])
    if row is None or row.status != PaymentIntentStatus.REQUIRES_ACTION or not isinstance(row.next_action, dict):
        return None
    secret = row.next_action.get("client_secret")
    if not secret or not row.payment_method:
        return None
    return {"client_secret": str(secret), "payment_method": str(row.payment_method)}


async def decline_message(services: Services, session: dict[str, Any], lang: Lang) -> str:
    """Why the last attempt failed: the payment intent's error, in this language when known."""
    message = None
    if session["payment_intent_id"]:
        async with services.db.read() as conn:
            error = await read.intent_error(conn, session["payment_intent_id"])
        if isinstance(error, dict):
            message = error.get("message")
    known = {"Your card was declined.": lang.gettext("Your card was declined.")}
    if message in known or message is None:
        return known["Your card was declined."]
    return lang.gettext("Your card was declined: %(reason)s") % {"reason": message}

"""Payment links: a reusable URL that sells fixed line items. Every visit of the link's page
starts a new checkout session (its `mode` follows the prices: one-time → `payment`, recurring →
`subscription`); a deactivated link sells nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from paywire import objects
from paywire.billing import checkout, items
from paywire.billing.runtime import Call
from paywire.billing.schemas import (
    AfterCompletion,
    CheckoutSessionCreate,
    LineItem,
    PaymentLinkCreate,
    PaymentLinkUpdate,
    SubscriptionData,
)
from paywire.db.engine import Tx
from paywire.db.schema import payment_links
from paywire.errors import InvalidRequest, NotFound, StateError
from paywire.ids import new_id


def render(m: Any) -> dict[str, Any]:
    url = m["after_completion_url"]
    after = {"type": "redirect", "redirect": {"url": url}} if url else {"type": "hosted_confirmation"}
    return {
        **objects.common_fields(m, "payment_link"),
        "active": m["active"],
        "url": m["url"],
        "mode": m["mode"],
        "currency": m["currency"],
        "line_items": [{"price_id": i["price_id"], "quantity": i["quantity"]} for i in m["line_items"]],
        "subscription_data": {"trial_period_days": m["trial_period_days"]} if m["mode"] == "subscription" else None,
        "after_completion": after,
        "locale": m["locale"],
    }


def _after_completion_url(after: AfterCompletion | None) -> str | None:
    if after is None or after.type == "hosted_confirmation":
        if after is not None and after.redirect is not None:
            raise InvalidRequest("redirect needs after_completion.type redirect", param="after_completion.redirect")
        return None
    if after.redirect is None:
        raise InvalidRequest("after_completion.redirect.url is required", param="after_completion.redirect")
    if not after.redirect.url.startswith(("http://", "https://")):
        raise InvalidRequest("must be an http(s) URL", param="after_completion.redirect.url")
    return after.redirect.url


async def create(tx: Tx, call: Call, params: PaymentLinkCreate, *, pages_url: str) -> dict[str, Any]:
    priced = await items.price_items(
        tx.conn, [(i.price_id, i.quantity) for i in params.line_items], call.livemode, "line_items"
    )
    kinds = {item.price["type"] for item in priced}
    if len(kinds) > 1:
        raise InvalidRequest("a payment link sells one-time or recurring prices, not both", param="line_items")
    mode = "subscription" if kinds == {"recurring"} else "payment"
    if mode == "subscription":
        items.recurrence(priced, "line_items")  # one currency and interval
    trial = params.subscription_data.trial_period_days if params.subscription_data else None
    if mode == "payment" and params.subscription_data is not None:
        raise InvalidRequest("subscription_data needs recurring prices", param="subscription_data")
    now = call.wall_now()
    link_id = new_id("plink")
    row = {
        "id": link_id,
        "livemode": call.livemode,
        "active": params.active,
        "line_items": [{"price_id": i.price["id"], "quantity": i.quantity} for i in priced],
        "mode": mode,
        "currency": priced[0].price["currency"],
        "trial_period_days": trial,
        "after_completion_url": _after_completion_url(params.after_completion),
        "locale": params.locale,
        "url": f"{pages_url}/pay/links/{link_id}",
        "metadata": params.metadata or {},
        "created": int(now),
        "updated": int(now),
    }
    return await objects.create_object(
        tx, call, payment_links, row, render=render, event_type="payment_link.created", now=now
    )


async def update(tx: Tx, call: Call, link_id: str, params: PaymentLinkUpdate) -> dict[str, Any]:
    values: dict[str, Any] = {}
    fields = params.model_fields_set
    if params.active is not None:
        values["active"] = params.active
    if params.locale is not None:
        values["locale"] = params.locale
    if "after_completion" in fields:
        values["after_completion_url"] = _after_completion_url(params.after_completion)
    if "metadata" in fields and params.metadata is not None:
        values["metadata"] = params.metadata
    return await objects.update_object(
        tx, call, payment_links, link_id, values, render=render, event_type="payment_link.updated", now=call.wall_now()
    )


async def load(conn: Any, link_id: str) -> sa.RowMapping:
    """A link by its id, in either mode (the id in its URL is its secret)."""
    row = (await conn.execute(sa.select(payment_links).where(payment_links.c.id == link_id))).mappings().first()
    if row is None:
        raise NotFound(f"no such payment link: {link_id!r}", param="id")
    return row  # type: ignore[no-any-return]


async def start_session(tx: Tx, call: Call, link: sa.RowMapping, *, pages_url: str) -> dict[str, Any]:
    """A new checkout session for one visit of the link (refused once the link is inactive)."""
    if not link["active"]:
        raise StateError(f"payment link {link['id']!r} is not active", code="payment_link_inactive")
    trial = link["trial_period_days"]
    params = CheckoutSessionCreate(
        mode=link["mode"],
        line_items=[LineItem(price_id=i["price_id"], quantity=i["quantity"]) for i in link["line_items"]],
        subscription_data=SubscriptionData(trial_period_days=trial) if trial is not None else None,
        success_url=link["after_completion_url"],
        locale=link["locale"],
        metadata={"payment_link_id": link["id"]},
    )
    return await checkout.create(tx, call, params, pages_url=pages_url, payment_link_id=link["id"])


def listing(livemode: bool, *, active: bool | None = None) -> sa.Select[Any]:
    query = sa.select(payment_links).where(payment_links.c.livemode == livemode)
    return query if active is None else query.where(payment_links.c.active == active)

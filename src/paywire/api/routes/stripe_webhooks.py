"""`POST /api/integrations/stripe/webhook`: what Stripe reports later (billing/provider_events.py).

No API key: the request is authenticated by its `Stripe-Signature`, checked by the `stripe`
package against `PAYWIRE_STRIPE_WEBHOOK_SECRET`. A repeat of an event Stripe already delivered
is answered 200 and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import stripe
from fastapi import APIRouter, Request

from paywire.api.context import services_of
from paywire.billing import provider_events
from paywire.errors import InvalidRequest, NotFound

router = APIRouter(tags=["integrations"])


@router.post("/api/integrations/stripe/webhook", include_in_schema=False)
async def stripe_webhook(request: Request) -> dict[str, Any]:
    services = services_of(request)
    secret = services.settings.stripe_webhook_secret
    if secret is None:
        raise NotFound("Stripe webhooks are not configured: set PAYWIRE_STRIPE_WEBHOOK_SECRET")
    payload = await request.body()
    signature = request.headers.get("stripe-signature", "")
    try:
        stripe.Webhook.construct_event(payload, signature, secret.get_secret_value())
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidRequest(f"invalid Stripe-Signature: {exc}", param="Stripe-Signature") from None
    try:
        event = json.loads(payload)
        assert isinstance(event, dict) and isinstance(event["data"]["object"], dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise InvalidRequest("not a Stripe event") from None
    applied = await provider_events.apply(services.db, services.billing, event)
    return {"received": True, "duplicate": not applied}

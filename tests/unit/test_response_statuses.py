"""The API's response models name every status an object can have (one enum per kind), so the
OpenAPI document, the SDK's users and schemathesis see the closed set, not any string."""

from __future__ import annotations

from enum import StrEnum

import pydantic
import pytest

from paywire.billing import schemas, statuses
from paywire.schemas import CLIENT_CONTEXT
from paywire.sdk import models

REFUND = {
    "id": "re_1",
    "object": "refund",
    "livemode": False,
    "created": 0,
    "created_at": "1970-01-01T00:00:00Z",
    "amount": "1.00",
    "currency": "usd",
    "payment_intent_id": "pi_1",
    "status": "succeeded",
}

FIELDS: list[tuple[type[pydantic.BaseModel], str, type[StrEnum]]] = [
    (schemas.CheckoutSession, "status", statuses.CheckoutSessionStatus),
    (schemas.CheckoutSession, "payment_status", statuses.CheckoutPaymentStatus),
    (schemas.CheckoutSession, "nft_mint_status", statuses.NftMintStatus),
    (schemas.Subscription, "status", statuses.SubscriptionStatus),
    (schemas.Invoice, "status", statuses.InvoiceStatus),
    (schemas.PaymentIntent, "status", statuses.PaymentIntentStatus),
    (schemas.Refund, "status", statuses.RefundStatus),
    (schemas.TestClock, "status", statuses.TestClockStatus),
]


def _enum_values(model: type[pydantic.BaseModel], field: str) -> list[str]:
    """The values the model's JSON schema allows for `field` (an enum, maybe behind `anyOf` null)."""
    document = model.model_json_schema()
    prop = document["properties"][field]
    for ref in [prop, *prop.get("anyOf", [])]:
        if "$ref" in ref:
            return list(document["$defs"][ref["$ref"].rsplit("/", 1)[1]]["enum"])
        if "enum" in ref:
            return list(ref["enum"])
    raise AssertionError(f"{model.__name__}.{field} is not an enum: {prop}")


@pytest.mark.parametrize(("model", "field", "enum"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_each_status_field_is_its_closed_set(model: type[pydantic.BaseModel], field: str, enum: type[StrEnum]) -> None:
    assert _enum_values(model, field) == [member.value for member in enum]


def test_a_status_outside_the_set_is_refused_by_the_server() -> None:
    with pytest.raises(pydantic.ValidationError, match="status"):
        schemas.Refund.model_validate({**REFUND, "status": "maybe"})


def test_a_client_keeps_a_status_it_does_not_know_yet() -> None:
    # An SDK released before the server added a status must not fail on it.
    refund = models.Refund.model_validate({**REFUND, "status": "maybe"}, context=CLIENT_CONTEXT)
    assert refund.status == "maybe"
    known = models.Refund.model_validate(REFUND, context=CLIENT_CONTEXT)
    assert known.status is statuses.RefundStatus.SUCCEEDED
    with pytest.raises(pydantic.ValidationError, match="status"):  # not a string: still refused
        models.Refund.model_validate({**REFUND, "status": 3}, context=CLIENT_CONTEXT)


def test_a_checkout_session_mode_is_its_closed_set() -> None:
    assert _enum_values(schemas.CheckoutSession, "mode") == ["payment", "subscription"]

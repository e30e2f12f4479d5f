from __future__ import annotations

import pytest

from paywire.events import catalogue

PAYMENT_KIT = {
    "checkout.session.completed": "checkout_session",
    "checkout.session.nft_minted": "checkout_session",
    "customer.subscription.created": "subscription",
    "customer.subscription.started": "subscription",
    "customer.subscription.renewed": "subscription",
    "customer.subscription.upgraded": "subscription",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
    "customer.subscription.paused": "subscription",
    "customer.subscription.resumed": "subscription",
    "customer.subscription.trial_start": "subscription",
    "customer.subscription.trial_will_end": "subscription",
    "customer.subscription.trial_end": "subscription",
    "payment_intent.succeeded": "payment_intent",
    "payment_intent.payment_failed": "payment_intent",
    "invoice.paid": "invoice",
    "refund.succeeded": "refund",
}


def test_payment_kits_seventeen_types_with_their_objects() -> None:
    assert (
        dict(
            zip(
                catalogue.PAYMENT_KIT_EVENT_TYPES,
                [catalogue.get(t).object_type for t in catalogue.PAYMENT_KIT_EVENT_TYPES],
                strict=True,
            )
        )
        == PAYMENT_KIT
    )


@pytest.mark.parametrize(
    "name", ["customer.created", "customer.updated", "product.created", "price.created", "webhook_endpoint.disabled"]
)
def test_paywires_own_types_are_catalogued(name: str) -> None:
    entry = catalogue.get(name)
    assert entry.description and not entry.in_payment_kit


def test_every_entry_is_described_and_typed() -> None:
    for entry in catalogue.EVENT_TYPES.values():
        assert entry.description.endswith(".")
        assert entry.object_type
        assert entry.name.count(".") >= 1


def test_unknown_type_is_named() -> None:
    with pytest.raises(KeyError, match=r"customer\.exploded"):
        catalogue.get("customer.exploded")
    assert catalogue.unknown_types(["*", "invoice.paid", "nope", "invoice.*"]) == ["nope", "invoice.*"]


@pytest.mark.parametrize(
    ("enabled", "event_type", "expected"),
    [
        (["*"], "invoice.paid", True),
        (["invoice.paid"], "invoice.paid", True),
        (["invoice.paid"], "refund.succeeded", False),
        (["customer.subscription.started", "customer.subscription.renewed"], "customer.subscription.renewed", True),
        ([], "invoice.paid", False),
    ],
)
def test_matching(enabled: list[str], event_type: str, expected: bool) -> None:
    assert catalogue.matches(enabled, event_type) is expected

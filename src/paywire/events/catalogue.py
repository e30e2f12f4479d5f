"""Every event type Paywire emits: Payment Kit's 17 and Paywire's own, each with what it carries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    object_type: str
    description: str
    in_payment_kit: bool = False


_CATALOGUE: tuple[EventType, ...] = (
    # Checkout (Payment Kit)
    EventType("checkout.session.completed", "checkout_session", "Checkout payment completed.", True),
    EventType("checkout.session.nft_minted", "checkout_session", "NFT minting completed.", True),
    # Subscription (Payment Kit)
    EventType("customer.subscription.created", "subscription", "Subscription created.", True),
    EventType("customer.subscription.started", "subscription", "Subscription started: first paid period.", True),
    EventType("customer.subscription.renewed", "subscription", "Subscription renewed for a new period.", True),
    EventType("customer.subscription.upgraded", "subscription", "Subscription upgraded; proration charged.", True),
    EventType("customer.subscription.updated", "subscription", "Subscription fields changed.", True),
    EventType("customer.subscription.deleted", "subscription", "Subscription canceled.", True),
    EventType("customer.subscription.paused", "subscription", "Subscription paused.", True),
    EventType("customer.subscription.resumed", "subscription", "Subscription resumed.", True),
    # Trial (Payment Kit)
    EventType("customer.subscription.trial_start", "subscription", "Trial started.", True),
    EventType("customer.subscription.trial_will_end", "subscription", "Trial ends in 3 days or less.", True),
    EventType("customer.subscription.trial_end", "subscription", "Trial ended.", True),
    # Payment (Payment Kit)
    EventType("payment_intent.succeeded", "payment_intent", "Payment succeeded.", True),
    EventType("payment_intent.payment_failed", "payment_intent", "Payment failed.", True),
    EventType("invoice.paid", "invoice", "Invoice paid.", True),
    EventType("refund.succeeded", "refund", "Refund succeeded.", True),
    # Paywire's own
    EventType("customer.created", "customer", "Customer created."),
    EventType("customer.updated", "customer", "Customer fields changed."),
    EventType("product.created", "product", "Product created."),
    EventType("product.updated", "product", "Product fields changed."),
    EventType("price.created", "price", "Price created."),
    EventType("price.updated", "price", "Price fields changed."),
    EventType("checkout.session.created", "checkout_session", "Checkout session created."),
    EventType("checkout.session.expired", "checkout_session", "Checkout session expired unpaid."),
    EventType("checkout.session.nft_mint_failed", "checkout_session", "NFT minting failed; see nft_mint_details."),
    EventType("invoice.created", "invoice", "Invoice created."),
    EventType("invoice.payment_failed", "invoice", "An attempt to pay the invoice failed."),
    EventType("invoice.voided", "invoice", "Invoice voided."),
    EventType("invoice.marked_uncollectible", "invoice", "Invoice marked uncollectible."),
    EventType("payment_intent.created", "payment_intent", "Payment intent created."),
    EventType("charge.dispute.created", "dispute", "The payment provider reported a dispute (chargeback)."),
    EventType(
        "refund.failed", "refund", "A refund the payment provider reported failed after it succeeded; refundable again."
    ),
    EventType("payment_link.created", "payment_link", "Payment link created."),
    EventType("payment_link.updated", "payment_link", "Payment link fields changed (e.g. deactivated)."),
    EventType("webhook_endpoint.disabled", "webhook_endpoint", "Endpoint disabled: 410, or no success for 5 days."),
    EventType(
        "webhook_endpoint.test",
        "webhook_endpoint",
        "A test event an operator sent to this one endpoint (from the dashboard); nothing changed.",
    ),
)

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _CATALOGUE}
PAYMENT_KIT_EVENT_TYPES: tuple[str, ...] = tuple(t.name for t in _CATALOGUE if t.in_payment_kit)


def is_known(name: str) -> bool:
    return name in EVENT_TYPES


def get(name: str) -> EventType:
    """The catalogue entry; KeyError names the unknown type."""
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None


def matches(enabled_events: list[str] | tuple[str, ...], event_type: str) -> bool:
    """True when an endpoint or subscriber that enabled `enabled_events` should get `event_type`."""
    return "*" in enabled_events or event_type in enabled_events


def types_matching(pattern: str) -> list[str] | None:
    """The event types a filter means: None for every type (`""`, `*`); a `prefix.*` is the
    catalogue's types under that prefix. Every stored event's type is in the catalogue (`append`
    refuses others), so reading those types (an index range each) finds exactly the events a
    `LIKE 'prefix%'` would, without the scan a LIKE costs SQLite."""
    pattern = pattern.strip()
    if not pattern or pattern == "*":
        return None
    if pattern.endswith("*"):
        return [name for name in EVENT_TYPES if name.startswith(pattern[:-1])]
    return [pattern]


def unknown_types(names: list[str]) -> list[str]:
    """The entries of `names` that are neither `*` nor in the catalogue."""
    return [n for n in names if n != "*" and n not in EVENT_TYPES]

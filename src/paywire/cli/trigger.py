"""`paywire trigger <event type>`: run a real scenario through the API, show the events it caused.

Like `stripe trigger`, but nothing is fabricated: each scenario creates products, prices,
customers and subscriptions through the SDK, moves a test clock where time must pass (trial
notices, renewals, dunning, scheduled cancels, expiring sessions), and then lists the events
the engine emitted since the scenario began, keeping those about the objects it touched.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from paywire.billing.schemas import CheckoutSession, Subscription
from paywire.cli import remote
from paywire.events.catalogue import EVENT_TYPES
from paywire.schemas import EventObject
from paywire.sdk import CardError, Paywire

T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")
DAY = 86_400
DISABLE_WAIT = 20.0  # seconds to wait for the dispatcher to disable the 410 endpoint


class ScenarioFailed(Exception):
    """The scenario could not run to its end (the message says why)."""


def present(value: V | None, what: str) -> V:
    """`value`, which the scenario needs: a missing one (None) fails it."""
    if value is None:
        raise ScenarioFailed(f"the server returned no {what}")
    return value


class Run:
    """One scenario's state: the client, the ids it touched, and its test clock if any."""

    def __init__(self, payment: Paywire) -> None:
        self.payment = payment
        self.ids: set[str] = set()
        self.clock_id: str | None = None
        self.now = int(time.time())

    def keep(self, obj: T) -> T:
        self.ids.add(str(getattr(obj, "id")))  # noqa: B009  # every API object has an id
        return obj

    def customer(self, *, on_clock: bool = False) -> str:
        """A customer; `on_clock` puts it (and its subscriptions) on a new test clock frozen now."""
        if on_clock:
            self.clock_id = self.keep(self.payment.test_clocks.create(frozen_time=self.now, name="paywire trigger")).id
        customer = self.payment.customers.create(
            email="trigger@example.com", name="Paywire trigger", test_clock_id=self.clock_id
        )
        return str(self.keep(customer).id)

    def price(self, amount: str = "10.00", *, recurring: bool = True, product_id: str | None = None) -> str:
        if product_id is None:
            product_id = self.keep(self.payment.products.create(name="Trigger plan")).id
        interval: Any = {"interval": "month", "interval_count": 1} if recurring else None
        price = self.payment.prices.create(
            product_id=product_id, unit_amount=amount, currency="usd", recurring=interval
        )
        return self.keep(price).id

    def subscribe(
        self, price_id: str, *, customer_id: str | None = None, pm: str = "pm_card_visa", **extra: Any
    ) -> Subscription:
        customer_id = customer_id or self.customer(on_clock=True)
        items = [{"price_id": price_id, "quantity": extra.pop("quantity", 1)}]
        sub = self.payment.subscriptions.create(
            customer_id=customer_id, items=items, default_payment_method=pm, **extra
        )
        return self.keep(sub)

    def advance(self, to: int) -> None:
        if self.clock_id is None:
            raise ScenarioFailed("advance needs a test clock")
        self.payment.test_clocks.advance(self.clock_id, frozen_time=to)

    def checkout(self, mode: str = "payment", *, price_id: str | None = None, **extra: Any) -> CheckoutSession:
        price_id = price_id or self.price("19.99", recurring=mode == "subscription")
        session = self.payment.checkout.sessions.create(
            mode=mode, line_items=[{"price_id": price_id, "quantity": 1}], **extra
        )
        return self.keep(session)

    def confirm(self, session_id: str, pm: str = "pm_card_visa") -> CheckoutSession:
        done = self.payment.checkout.sessions.confirm(session_id, payment_method=pm)
        self.ids.update(str(v) for v in (done.payment_intent_id, done.subscription_id) if v)
        return done


# --- scenarios: each runs through the API; the engine emits what it emits -------------------


def customer_created(run: Run) -> None:
    run.customer()


def customer_updated(run: Run) -> None:
    run.payment.customers.update(run.customer(), name="Ada Lovelace")


def product_created(run: Run) -> None:
    run.keep(run.payment.products.create(name="Trigger product"))


def product_updated(run: Run) -> None:
    product = run.keep(run.payment.products.create(name="Trigger product"))
    run.payment.products.update(product.id, name="Trigger product, renamed")


def price_created(run: Run) -> None:
    run.price()


def price_updated(run: Run) -> None:
    run.payment.prices.update(run.price(), nickname="monthly")


def payment_link_created(run: Run) -> None:
    run.keep(run.payment.payment_links.create(line_items=[{"price_id": run.price(recurring=False)}]))


def payment_link_updated(run: Run) -> None:
    link = run.keep(run.payment.payment_links.create(line_items=[{"price_id": run.price(recurring=False)}]))
    run.payment.payment_links.update(link.id, active=False)


def checkout_created(run: Run) -> None:
    run.checkout()


def checkout_paid(run: Run) -> None:
    run.confirm(run.checkout().id)


def checkout_declined(run: Run) -> None:
    session = run.checkout()
    try:
        run.confirm(session.id, "pm_card_visa_chargeDeclined")
    except CardError as exc:  # expected: the card is declined, the session stays open
        intent = (exc.body or {}).get("error", {}).get("payment_intent") or {}
        run.ids.update([intent["id"]] if "id" in intent else [])
    else:
        raise ScenarioFailed("pm_card_visa_chargeDeclined was not declined")


def checkout_nft(run: Run) -> None:
    run.confirm(run.checkout(nft_mint_settings={"enabled": True}).id)


def checkout_expired(run: Run) -> None:
    customer_id = run.customer(on_clock=True)
    run.checkout(customer_id=customer_id, expires_at=run.now + 1800)
    run.advance(run.now + 1800)


def refund(run: Run) -> None:
    done = run.confirm(run.checkout().id)
    run.keep(run.payment.payment_intents.refund(present(done.payment_intent_id, "payment_intent_id")))


def subscription_started(run: Run) -> None:
    run.subscribe(run.price())


def trial_start(run: Run) -> None:
    run.subscribe(run.price(), trial_period_days=7)


def trial_will_end(run: Run) -> None:
    sub = run.subscribe(run.price(), trial_period_days=7)
    run.advance(present(sub.trial_end, "trial_end") - 3 * DAY)


def trial_end(run: Run) -> None:
    sub = run.subscribe(run.price(), trial_period_days=7)
    run.advance(present(sub.trial_end, "trial_end"))


def renewed(run: Run) -> None:
    sub = run.subscribe(run.price())
    run.advance(sub.current_period_end)


def upgraded(run: Run) -> None:
    cheap = run.price("10.00")
    dear = run.price("20.00")
    sub = run.subscribe(cheap)
    run.advance(run.now + 10 * DAY)
    run.payment.subscriptions.update(sub.id, items=[{"price_id": dear}])


def quantity_down(run: Run) -> None:
    plan = run.price()
    sub = run.subscribe(plan, quantity=3)
    run.payment.subscriptions.update(sub.id, items=[{"price_id": plan, "quantity": 1}])


def scheduled_cancel(run: Run) -> None:
    sub = run.subscribe(run.price())
    run.payment.subscriptions.cancel(sub.id, at_period_end=True)
    run.advance(sub.current_period_end)


def paused(run: Run) -> None:
    run.payment.subscriptions.pause(run.subscribe(run.price()).id)


def resumed(run: Run) -> None:
    sub = run.subscribe(run.price())
    run.payment.subscriptions.pause(sub.id)
    run.payment.subscriptions.resume(sub.id)


def renewal_fails(run: Run) -> None:
    sub = run.subscribe(run.price())
    run.payment.subscriptions.update(sub.id, default_payment_method="pm_card_chargeCustomerFail")
    run.advance(sub.current_period_end)


def dunning_exhausted(run: Run) -> None:
    """The renewal fails, is retried after 1, 3 and 5 days, and the last failure cancels."""
    sub = run.subscribe(run.price())
    run.payment.subscriptions.update(sub.id, default_payment_method="pm_card_chargeCustomerFail")
    for day in (0, 1, 3, 5):
        run.advance(sub.current_period_end + day * DAY)


def upgrade_declined(run: Run) -> None:
    """An upgrade whose proration charge is declined: its invoice is voided."""
    cheap, dear = run.price("10.00"), run.price("20.00")
    sub = run.subscribe(cheap)
    run.payment.subscriptions.update(sub.id, default_payment_method="pm_card_chargeCustomerFail")
    try:
        run.payment.subscriptions.update(sub.id, items=[{"price_id": dear}])
    except CardError:
        return
    raise ScenarioFailed("the upgrade was not declined")


class _Gone(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(410)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def gone_receiver() -> Iterator[str]:
    """A receiver on 127.0.0.1 that answers every webhook with 410 Gone; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gone"
    finally:
        server.shutdown()
        server.server_close()


def endpoint_disabled(run: Run) -> None:
    """A real 410: an endpoint pointing at a local receiver that answers Gone, then one event."""
    with gone_receiver() as url:
        endpoint = run.keep(
            run.payment.webhook_endpoints.create(
                url=url, enabled_events=["customer.created"], description="paywire trigger: answers 410"
            )
        )
        try:
            run.customer()
            deadline = time.monotonic() + DISABLE_WAIT
            while run.payment.webhook_endpoints.retrieve(endpoint.id).status != "disabled":
                if time.monotonic() > deadline:
                    raise ScenarioFailed(
                        "the endpoint was not disabled: the server needs a delivery worker "
                        "(`paywire serve` without --no-worker, or `paywire worker`) on this machine"
                    )
                time.sleep(0.2)
        finally:  # a dead endpoint would only get in the way (the examples update the first one)
            run.payment.webhook_endpoints.delete(endpoint.id)


@dataclass(frozen=True)
class Scenario:
    run: Callable[[Run], None]
    what: str


CHECKOUT = Scenario(checkout_paid, "one-time checkout paid with pm_card_visa")
DIRECT = Scenario(subscription_started, "subscription created directly, paid with pm_card_visa")
SCENARIOS: dict[str, Scenario] = {
    "checkout.session.completed": CHECKOUT,
    "checkout.session.nft_minted": Scenario(checkout_nft, "checkout with nft_mint_settings.enabled"),
    "checkout.session.created": Scenario(checkout_created, "an open checkout session"),
    "checkout.session.expired": Scenario(checkout_expired, "checkout session left open; test clock +30 min"),
    "customer.subscription.created": DIRECT,
    "customer.subscription.started": DIRECT,
    "customer.subscription.renewed": Scenario(renewed, "subscription; test clock to the period end"),
    "customer.subscription.upgraded": Scenario(upgraded, "subscription; +10 days; price raised (proration)"),
    "customer.subscription.updated": Scenario(quantity_down, "subscription; quantity 3 → 1"),
    "customer.subscription.deleted": Scenario(scheduled_cancel, "cancel at period end; test clock to it"),
    "customer.subscription.paused": Scenario(paused, "subscription paused"),
    "customer.subscription.resumed": Scenario(resumed, "subscription paused, then resumed"),
    "customer.subscription.trial_start": Scenario(trial_start, "subscription with a 7-day trial"),
    "customer.subscription.trial_will_end": Scenario(trial_will_end, "7-day trial; test clock +4 days"),
    "customer.subscription.trial_end": Scenario(trial_end, "7-day trial; test clock to its end"),
    "payment_intent.created": CHECKOUT,
    "payment_intent.succeeded": CHECKOUT,
    "payment_intent.payment_failed": Scenario(checkout_declined, "checkout with pm_card_visa_chargeDeclined"),
    "invoice.created": DIRECT,
    "invoice.paid": DIRECT,
    "invoice.payment_failed": Scenario(renewal_fails, "renewal with a card that fails (past_due)"),
    "invoice.voided": Scenario(upgrade_declined, "upgrade whose proration charge fails"),
    "invoice.marked_uncollectible": Scenario(dunning_exhausted, "renewal fails; retries +1, +3, +5 days fail"),
    "refund.succeeded": Scenario(refund, "one-time checkout paid, then refunded in full"),
    "customer.created": Scenario(customer_created, "a customer"),
    "customer.updated": Scenario(customer_updated, "a customer, renamed"),
    "product.created": Scenario(product_created, "a product"),
    "product.updated": Scenario(product_updated, "a product, renamed"),
    "price.created": Scenario(price_created, "a monthly price"),
    "price.updated": Scenario(price_updated, "a price, given a nickname"),
    "payment_link.created": Scenario(payment_link_created, "a payment link for a one-time price"),
    "payment_link.updated": Scenario(payment_link_updated, "a payment link, deactivated"),
    "webhook_endpoint.disabled": Scenario(
        endpoint_disabled, "endpoint to a local receiver answering 410; one event (needs a worker)"
    ),
}

# Types in the catalogue that no API call can cause; `trigger` says so instead of pretending.
NOT_TRIGGERABLE: dict[str, str] = {
    "checkout.session.nft_mint_failed": (
        "emitted only when the server's configured minter fails; the built-in signed-receipt "
        "minter does not, and no API call can make it"
    ),
    "webhook_endpoint.test": "sent by an operator from the dashboard's endpoint page, to that endpoint only",
    "charge.dispute.created": (
        "emitted only when Stripe reports a dispute to POST /api/integrations/stripe/webhook; "
        "no Paywire API call can make one"
    ),
    "refund.failed": (
        "emitted only when Stripe reports to POST /api/integrations/stripe/webhook that a refund "
        "which had succeeded failed; no Paywire API call can make one"
    ),
}


# --- collecting what happened ---------------------------------------------------------------


def newest_event_id(payment: Paywire) -> str | None:
    page = payment.events.list(size=1)
    return page.list[0].id if page.list else None


def events_since(payment: Paywire, marker: str | None) -> list[EventObject]:
    """Events created after `marker`, oldest first (pages are newest first; stop at the marker)."""
    found: dict[str, EventObject] = {}
    page: Any = payment.events.list(size=100)
    while page is not None:
        for event in page.list:
            if event.id == marker:
                return list(reversed(found.values()))
            found.setdefault(event.id, event)
        page = page.next_page()
    return list(reversed(found.values()))


def related(events: list[EventObject], ids: set[str]) -> list[EventObject]:
    """The events about the touched objects, or about objects those events point to."""
    ids = set(ids)
    kept: list[EventObject] = []
    for event in events:
        refs = {v for k, v in event.data.object.items() if k.endswith("_id") and isinstance(v, str)}
        if event.object_id in ids or refs & ids:
            ids.add(event.object_id)
            kept.append(event)
    return kept


def run_scenario(payment: Paywire, event_type: str) -> list[EventObject]:
    """Run the scenario for `event_type`; the events it caused, oldest first."""
    scenario = SCENARIOS[event_type]
    marker = newest_event_id(payment)
    run = Run(payment)
    scenario.run(run)
    events = related(events_since(payment, marker), run.ids)
    if not any(e.type == event_type for e in events):
        raise ScenarioFailed(f"the scenario ran but the server emitted no {event_type} event")
    return events


# --- the command ----------------------------------------------------------------------------


def _show_list() -> None:
    rows = [[name, SCENARIOS[name].what if name in SCENARIOS else f"not triggerable: {NOT_TRIGGERABLE[name]}"]
            for name in EVENT_TYPES]  # fmt: skip
    remote.table("paywire trigger", ["event type", "scenario"], rows, f"{len(SCENARIOS)} of {len(EVENT_TYPES)}")


def trigger(
    event_type: Annotated[str | None, typer.Argument(help="An event type, e.g. customer.subscription.renewed.")] = None,
    list_types: Annotated[bool, typer.Option("--list", help="Show every type and its scenario.")] = False,
    as_json: remote.AsJson = False,
    url: remote.ServerUrl = None,
    api_key: remote.ApiKey = None,
) -> None:
    """Cause an event for real: run a scenario through the API (test mode) and show its events."""
    if list_types:
        _show_list()
        return
    if event_type is None or event_type not in EVENT_TYPES:
        what = f"unknown event type {event_type!r}" if event_type else "an event type is needed"
        remote.err.print(f"[red]{what}[/red]; `paywire trigger --list` shows the types")
        raise typer.Exit(2)
    if event_type in NOT_TRIGGERABLE:
        remote.err.print(f"[red]{event_type} cannot be triggered: {NOT_TRIGGERABLE[event_type]}[/red]")
        raise typer.Exit(1)
    if (api_key or os.environ.get("PAYWIRE_API_KEY", "")).startswith("sk_live_"):
        remote.err.print("[red]trigger runs test scenarios: use a test key (sk_test_…)[/red]")
        raise typer.Exit(2)
    with remote.client(url, api_key) as payment:
        try:
            with remote.err.status(f"running the {event_type} scenario…"):
                events = run_scenario(payment, event_type)
        except ScenarioFailed as exc:
            remote.err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    if as_json:
        remote.dump([e.model_dump(mode="json") for e in events])
        return
    rows = [[f"[bold]{e.type}[/bold]" if e.type == event_type else e.type, e.id, e.object_id] for e in events]
    remote.table(f"Triggered {event_type}", ["type", "id", "object"], rows, f"{len(events)} events, oldest first")

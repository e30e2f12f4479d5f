"""The sync client's resources, generated from `async_resources.py` by `scripts/generate_sync_sdk.py`
(unasync): edit that file and run the script, never this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from typing_extensions import Unpack

from paywire.billing.schemas import (
    CheckoutSession,
    Invoice,
    PaymentIntent,
    PaymentLink,
    PortalSession,
    Refund,
    Subscription,
    TestClock,
)
from paywire.schemas import (
    CLIENT_CONTEXT,
    Customer,
    EndpointRecoverResult,
    EventDestination,
    EventDestinationRecoverResult,
    EventDestinationWithSecret,
    EventObject,
    EventResendResult,
    Price,
    Product,
    Secret,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
)
from paywire.sdk import models
from paywire.sdk.arguments import compact, segment
from paywire.sdk.models import DeletedObject, ListResult, list_of
from paywire.sdk.params import (
    CustomerCreateParams,
    CustomerUpdateParams,
    EventDestinationUpdateParams,
    PriceUpdateParams,
    ProductUpdateParams,
    RecurringParams,
    WebhookEndpointUpdateParams,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T", bound=BaseModel)


class Requester(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any: ...


class Resource(Generic[M]):
    def __init__(self, client: Requester, path: str, model: type[M]) -> None:
        self._client = client
        self._path = path
        self._model = model

    def _call(
        self,
        method: str,
        suffix: str,
        model: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> T:
        body = self._client.request(
            method, self._path + suffix, params=params, json=json, idempotency_key=idempotency_key
        )
        return model.model_validate(body, context=CLIENT_CONTEXT)

    def _create(self, body: Mapping[str, Any], idempotency_key: str | None) -> M:
        return self._call("POST", "", self._model, json=compact(body), idempotency_key=idempotency_key)

    def _retrieve(self, id: str) -> M:
        return self._call("GET", segment(id), self._model)

    def _update(self, id: str, fields: Mapping[str, Any]) -> M:
        return self._call("PUT", segment(id), self._model, json=dict(fields))

    def _action(self, id: str, action: str, body: Mapping[str, Any], idempotency_key: str | None, model: type[T]) -> T:
        suffix = f"{segment(id)}/{action}"
        return self._call("POST", suffix, model, json=compact(body), idempotency_key=idempotency_key)

    def _list(self, page: int, size: int, filters: Mapping[str, Any]) -> ListResult[M]:
        params = {**filters, "page": page, "size": size}
        result = self._call("GET", "", list_of(self._model), params=params)
        result._fetch = lambda next_page: self._list(next_page, size, filters)
        return result


class WebhookEndpoints(Resource[WebhookEndpoint]):
    def list(self, *, page: int = 1, size: int = 20) -> ListResult[WebhookEndpoint]:
        return self._list(page, size, {})

    def create(
        self,
        *,
        url: str,
        enabled_events: Sequence[str],
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookEndpointWithSecret:
        body = {"url": url, "enabled_events": list(enabled_events), "description": description, "metadata": metadata}
        return self._call("POST", "", WebhookEndpointWithSecret, json=compact(body), idempotency_key=idempotency_key)

    def retrieve(self, id: str) -> WebhookEndpoint:
        return self._retrieve(id)

    def update(self, id: str, **fields: Unpack[WebhookEndpointUpdateParams]) -> WebhookEndpoint:
        return self._update(id, fields)

    def delete(self, id: str) -> DeletedObject:
        return self._call("DELETE", segment(id), DeletedObject)

    def secret(self, id: str) -> Secret:
        return self._call("GET", f"{segment(id)}/secret", Secret)

    def rotate_secret(self, id: str, *, expires_in: int | None = None, idempotency_key: str | None = None) -> Secret:
        """A new secret; the old one keeps signing for `expires_in` seconds (server default: a day)."""
        return self._action(id, "rotate-secret", {"expires_in": expires_in}, idempotency_key, Secret)

    def recover(self, id: str, *, since: int, idempotency_key: str | None = None) -> EndpointRecoverResult:
        """Re-queue every delivery to this endpoint that failed for good since `since` (unix seconds)."""
        return self._action(id, "recover", {"since": since}, idempotency_key, EndpointRecoverResult)


class EventDestinations(Resource[EventDestination]):
    """`/api/event-destinations`: webhook, rabbitmq, nats and redis destinations."""

    def list(self, *, type: str | None = None, page: int = 1, size: int = 20) -> ListResult[EventDestination]:
        return self._list(page, size, {"type": type} if type else {})

    def create(
        self,
        *,
        type: str,
        config: Mapping[str, str | int | None],
        enabled_events: Sequence[str],
        ordering: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> EventDestinationWithSecret:
        body = {
            "type": type,
            "config": dict(config),
            "enabled_events": list(enabled_events),
            "ordering": ordering,
            "description": description,
            "metadata": metadata,
        }
        return self._call("POST", "", EventDestinationWithSecret, json=compact(body), idempotency_key=idempotency_key)

    def retrieve(self, id: str) -> EventDestination:
        return self._retrieve(id)

    def update(self, id: str, **fields: Unpack[EventDestinationUpdateParams]) -> EventDestination:
        return self._update(id, fields)

    def delete(self, id: str) -> DeletedObject:
        return self._call("DELETE", segment(id), DeletedObject)

    def secret(self, id: str) -> Secret:
        return self._call("GET", f"{segment(id)}/secret", Secret)

    def rotate_secret(self, id: str, *, expires_in: int | None = None, idempotency_key: str | None = None) -> Secret:
        """A new secret; the old one keeps signing for `expires_in` seconds (server default: a day)."""
        return self._action(id, "rotate-secret", {"expires_in": expires_in}, idempotency_key, Secret)

    def recover(self, id: str, *, since: int, idempotency_key: str | None = None) -> EventDestinationRecoverResult:
        """Re-queue every delivery to this destination that failed for good since `since` (unix seconds)."""
        return self._action(id, "recover", {"since": since}, idempotency_key, EventDestinationRecoverResult)


class Customers(Resource[Customer]):
    def create(self, *, idempotency_key: str | None = None, **params: Unpack[CustomerCreateParams]) -> Customer:
        return self._create(params, idempotency_key)

    def retrieve(self, id: str) -> Customer:
        return self._retrieve(id)

    def update(self, id: str, **fields: Unpack[CustomerUpdateParams]) -> Customer:
        return self._update(id, fields)

    def list(self, *, email: str | None = None, page: int = 1, size: int = 20) -> ListResult[Customer]:
        return self._list(page, size, {"email": email})


class Products(Resource[Product]):
    def create(
        self,
        *,
        name: str,
        description: str | None = None,
        active: bool | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Product:
        body = {"name": name, "description": description, "active": active, "metadata": metadata}
        return self._create(body, idempotency_key)

    def retrieve(self, id: str) -> Product:
        return self._retrieve(id)

    def update(self, id: str, **fields: Unpack[ProductUpdateParams]) -> Product:
        return self._update(id, fields)

    def list(self, *, active: bool | None = None, page: int = 1, size: int = 20) -> ListResult[Product]:
        return self._list(page, size, {"active": active})


class Prices(Resource[Price]):
    def create(
        self,
        *,
        product_id: str,
        unit_amount: str,
        currency: str,
        type: str | None = None,
        recurring: RecurringParams | None = None,
        trial_period_days: int | None = None,
        nickname: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Price:
        body = {
            "product_id": product_id,
            "unit_amount": unit_amount,
            "currency": currency,
            "type": type,
            "recurring": recurring,
            "trial_period_days": trial_period_days,
            "nickname": nickname,
            "metadata": metadata,
        }
        return self._create(body, idempotency_key)

    def retrieve(self, id: str) -> Price:
        return self._retrieve(id)

    def update(self, id: str, **fields: Unpack[PriceUpdateParams]) -> Price:
        return self._update(id, fields)

    def list(
        self, *, product_id: str | None = None, active: bool | None = None, page: int = 1, size: int = 20
    ) -> ListResult[Price]:
        return self._list(page, size, {"product_id": product_id, "active": active})


class Events(Resource[EventObject]):
    def list(
        self, *, type: str | None = None, object_id: str | None = None, page: int = 1, size: int = 20
    ) -> ListResult[EventObject]:
        """`type` may be a prefix ending in `*` (`customer.subscription.*`)."""
        return self._list(page, size, {"type": type, "object_id": object_id})

    def retrieve(self, id: str) -> EventObject:
        return self._retrieve(id)

    def resend(
        self, id: str, *, webhook_endpoint_id: str | None = None, idempotency_key: str | None = None
    ) -> EventResendResult:
        """Queue a new delivery now: to one endpoint, or to every enabled endpoint that matches."""
        body = {"webhook_endpoint_id": webhook_endpoint_id}
        return self._action(id, "resend", body, idempotency_key, EventResendResult)


class WebhookAttempts(Resource[WebhookAttempt]):
    def list(
        self,
        *,
        event_id: str | None = None,
        webhook_endpoint_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        size: int = 20,
    ) -> ListResult[WebhookAttempt]:
        filters = {"event_id": event_id, "webhook_endpoint_id": webhook_endpoint_id, "status": status}
        return self._list(page, size, filters)


# --- billing: one generic base, the calls each resource has, typed by its model (models.py) -------


class BillingResource(Resource[M]):
    def retrieve(self, id: str) -> M:
        return self._retrieve(id)

    def list(self, *, page: int = 1, size: int = 20, **filters: Any) -> ListResult[M]:
        return self._list(page, size, filters)


class _Creatable(BillingResource[M]):
    def create(self, *, idempotency_key: str | None = None, **params: Any) -> M:
        return self._create(params, idempotency_key)


class CheckoutSessions(_Creatable[CheckoutSession]):
    def confirm(self, id: str, *, payment_method: str, idempotency_key: str | None = None) -> CheckoutSession:
        return self._action(id, "confirm", {"payment_method": payment_method}, idempotency_key, self._model)


class Checkout:
    def __init__(self, client: Requester) -> None:
        self.sessions = CheckoutSessions(client, "/api/checkout-sessions", models.CheckoutSession)


class Subscriptions(_Creatable[Subscription]):
    def update(self, id: str, **fields: Any) -> Subscription:
        return self._update(id, fields)

    def cancel(self, id: str, *, at_period_end: bool | None = None, idempotency_key: str | None = None) -> Subscription:
        return self._action(id, "cancel", {"at_period_end": at_period_end}, idempotency_key, self._model)

    def pause(self, id: str, *, idempotency_key: str | None = None) -> Subscription:
        return self._action(id, "pause", {}, idempotency_key, self._model)

    def resume(self, id: str, *, idempotency_key: str | None = None) -> Subscription:
        return self._action(id, "resume", {}, idempotency_key, self._model)


class Invoices(BillingResource[Invoice]):
    def pay(self, id: str, *, payment_method: str | None = None, idempotency_key: str | None = None) -> Invoice:
        return self._action(id, "pay", {"payment_method": payment_method}, idempotency_key, self._model)


class PaymentIntents(BillingResource[PaymentIntent]):
    def refund(
        self, id: str, *, amount: str | None = None, idempotency_key: str | None = None, **params: Any
    ) -> Refund:
        """Refund all of it, or `amount` (a decimal string). Returns the refund."""
        body = {"amount": amount, **params}
        return self._action(id, "refund", body, idempotency_key, models.Refund)


class Refunds(_Creatable[Refund]):
    pass


class TestClocks(_Creatable[TestClock]):
    __test__ = False  # not a pytest class

    def advance(self, id: str, *, frozen_time: int, idempotency_key: str | None = None) -> TestClock:
        """Move the clock to `frozen_time` (unix seconds); what falls due meanwhile runs."""
        return self._action(id, "advance", {"frozen_time": frozen_time}, idempotency_key, self._model)


class PaymentLinks(_Creatable[PaymentLink]):
    def update(self, id: str, **fields: Any) -> PaymentLink:
        """Change a link; `active=False` deactivates it."""
        return self._update(id, fields)


class BillingPortalSessions(Resource[PortalSession]):
    def create(self, *, idempotency_key: str | None = None, **params: Any) -> PortalSession:
        """A one-time portal `url` for `customer_id` (open within 5 minutes)."""
        return self._create(params, idempotency_key)


class BillingPortal:
    def __init__(self, client: Requester) -> None:
        self.sessions = BillingPortalSessions(client, "/api/billing-portal/sessions", models.PortalSession)


class Resources:
    """Every resource of one client, named as in the original SDK (in Python style)."""

    def __init__(self, client: Requester) -> None:
        self.webhook_endpoints = WebhookEndpoints(client, "/api/webhook-endpoints", WebhookEndpoint)
        self.event_destinations = EventDestinations(client, "/api/event-destinations", EventDestination)
        self.webhook_attempts = WebhookAttempts(client, "/api/webhook-attempts", WebhookAttempt)
        self.events = Events(client, "/api/events", EventObject)
        self.customers = Customers(client, "/api/customers", Customer)
        self.products = Products(client, "/api/products", Product)
        self.prices = Prices(client, "/api/prices", Price)
        self.checkout = Checkout(client)
        self.subscriptions = Subscriptions(client, "/api/subscriptions", models.Subscription)
        self.invoices = Invoices(client, "/api/invoices", models.Invoice)
        self.payment_intents = PaymentIntents(client, "/api/payment-intents", models.PaymentIntent)
        self.refunds = Refunds(client, "/api/refunds", models.Refund)
        self.test_clocks = TestClocks(client, "/api/test-clocks", models.TestClock)
        self.payment_links = PaymentLinks(client, "/api/payment-links", models.PaymentLink)
        self.billing_portal = BillingPortal(client)

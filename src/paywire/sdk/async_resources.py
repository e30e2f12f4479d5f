"""The async client's resources: thin classes, one method per API call, typed by the server's models.

This file is the source of both clients: `resources.py` is generated from it by
`scripts/generate_sync_sdk.py` (unasync), and a unit test fails when the two differ.
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
from paywire.sdk.models import AsyncListResult, DeletedObject, async_list_of
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


class AsyncRequester(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any: ...


class AsyncResource(Generic[M]):
    def __init__(self, client: AsyncRequester, path: str, model: type[M]) -> None:
        self._client = client
        self._path = path
        self._model = model

    async def _call(
        self,
        method: str,
        suffix: str,
        model: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> T:
        body = await self._client.request(
            method, self._path + suffix, params=params, json=json, idempotency_key=idempotency_key
        )
        return model.model_validate(body, context=CLIENT_CONTEXT)

    async def _create(self, body: Mapping[str, Any], idempotency_key: str | None) -> M:
        return await self._call("POST", "", self._model, json=compact(body), idempotency_key=idempotency_key)

    async def _retrieve(self, id: str) -> M:
        return await self._call("GET", segment(id), self._model)

    async def _update(self, id: str, fields: Mapping[str, Any]) -> M:
        return await self._call("PUT", segment(id), self._model, json=dict(fields))

    async def _action(
        self, id: str, action: str, body: Mapping[str, Any], idempotency_key: str | None, model: type[T]
    ) -> T:
        suffix = f"{segment(id)}/{action}"
        return await self._call("POST", suffix, model, json=compact(body), idempotency_key=idempotency_key)

    async def _list(self, page: int, size: int, filters: Mapping[str, Any]) -> AsyncListResult[M]:
        params = {**filters, "page": page, "size": size}
        result = await self._call("GET", "", async_list_of(self._model), params=params)
        result._fetch = lambda next_page: self._list(next_page, size, filters)
        return result


class AsyncWebhookEndpoints(AsyncResource[WebhookEndpoint]):
    async def list(self, *, page: int = 1, size: int = 20) -> AsyncListResult[WebhookEndpoint]:
        return await self._list(page, size, {})

    async def create(
        self,
        *,
        url: str,
        enabled_events: Sequence[str],
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookEndpointWithSecret:
        body = {"url": url, "enabled_events": list(enabled_events), "description": description, "metadata": metadata}
        return await self._call(
            "POST", "", WebhookEndpointWithSecret, json=compact(body), idempotency_key=idempotency_key
        )

    async def retrieve(self, id: str) -> WebhookEndpoint:
        return await self._retrieve(id)

    async def update(self, id: str, **fields: Unpack[WebhookEndpointUpdateParams]) -> WebhookEndpoint:
        return await self._update(id, fields)

    async def delete(self, id: str) -> DeletedObject:
        return await self._call("DELETE", segment(id), DeletedObject)

    async def secret(self, id: str) -> Secret:
        return await self._call("GET", f"{segment(id)}/secret", Secret)

    async def rotate_secret(
        self, id: str, *, expires_in: int | None = None, idempotency_key: str | None = None
    ) -> Secret:
        """A new secret; the old one keeps signing for `expires_in` seconds (server default: a day)."""
        return await self._action(id, "rotate-secret", {"expires_in": expires_in}, idempotency_key, Secret)

    async def recover(self, id: str, *, since: int, idempotency_key: str | None = None) -> EndpointRecoverResult:
        """Re-queue every delivery to this endpoint that failed for good since `since` (unix seconds)."""
        return await self._action(id, "recover", {"since": since}, idempotency_key, EndpointRecoverResult)


class AsyncEventDestinations(AsyncResource[EventDestination]):
    """`/api/event-destinations`: webhook, rabbitmq, nats and redis destinations."""

    async def list(
        self, *, type: str | None = None, page: int = 1, size: int = 20
    ) -> AsyncListResult[EventDestination]:
        return await self._list(page, size, {"type": type} if type else {})

    async def create(
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
        return await self._call(
            "POST", "", EventDestinationWithSecret, json=compact(body), idempotency_key=idempotency_key
        )

    async def retrieve(self, id: str) -> EventDestination:
        return await self._retrieve(id)

    async def update(self, id: str, **fields: Unpack[EventDestinationUpdateParams]) -> EventDestination:
        return await self._update(id, fields)

    async def delete(self, id: str) -> DeletedObject:
        return await self._call("DELETE", segment(id), DeletedObject)

    async def secret(self, id: str) -> Secret:
        return await self._call("GET", f"{segment(id)}/secret", Secret)

    async def rotate_secret(
        self, id: str, *, expires_in: int | None = None, idempotency_key: str | None = None
    ) -> Secret:
        """A new secret; the old one keeps signing for `expires_in` seconds (server default: a day)."""
        return await self._action(id, "rotate-secret", {"expires_in": expires_in}, idempotency_key, Secret)

    async def recover(
        self, id: str, *, since: int, idempotency_key: str | None = None
    ) -> EventDestinationRecoverResult:
        """Re-queue every delivery to this destination that failed for good since `since` (unix seconds)."""
        return await self._action(id, "recover", {"since": since}, idempotency_key, EventDestinationRecoverResult)


class AsyncCustomers(AsyncResource[Customer]):
    async def create(self, *, idempotency_key: str | None = None, **params: Unpack[CustomerCreateParams]) -> Customer:
        return await self._create(params, idempotency_key)

    async def retrieve(self, id: str) -> Customer:
        return await self._retrieve(id)

    async def update(self, id: str, **fields: Unpack[CustomerUpdateParams]) -> Customer:
        return await self._update(id, fields)

    async def list(self, *, email: str | None = None, page: int = 1, size: int = 20) -> AsyncListResult[Customer]:
        return await self._list(page, size, {"email": email})


class AsyncProducts(AsyncResource[Product]):
    async def create(
        self,
        *,
        name: str,
        description: str | None = None,
        active: bool | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Product:
        body = {"name": name, "description": description, "active": active, "metadata": metadata}
        return await self._create(body, idempotency_key)

    async def retrieve(self, id: str) -> Product:
        return await self._retrieve(id)

    async def update(self, id: str, **fields: Unpack[ProductUpdateParams]) -> Product:
        return await self._update(id, fields)

    async def list(self, *, active: bool | None = None, page: int = 1, size: int = 20) -> AsyncListResult[Product]:
        return await self._list(page, size, {"active": active})


class AsyncPrices(AsyncResource[Price]):
    async def create(
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
        return await self._create(body, idempotency_key)

    async def retrieve(self, id: str) -> Price:
        return await self._retrieve(id)

    async def update(self, id: str, **fields: Unpack[PriceUpdateParams]) -> Price:
        return await self._update(id, fields)

    async def list(
        self, *, product_id: str | None = None, active: bool | None = None, page: int = 1, size: int = 20
    ) -> AsyncListResult[Price]:
        return await self._list(page, size, {"product_id": product_id, "active": active})


class AsyncEvents(AsyncResource[EventObject]):
    async def list(
        self, *, type: str | None = None, object_id: str | None = None, page: int = 1, size: int = 20
    ) -> AsyncListResult[EventObject]:
        """`type` may be a prefix ending in `*` (`customer.subscription.*`)."""
        return await self._list(page, size, {"type": type, "object_id": object_id})

    async def retrieve(self, id: str) -> EventObject:
        return await self._retrieve(id)

    async def resend(
        self, id: str, *, webhook_endpoint_id: str | None = None, idempotency_key: str | None = None
    ) -> EventResendResult:
        """Queue a new delivery now: to one endpoint, or to every enabled endpoint that matches."""
        body = {"webhook_endpoint_id": webhook_endpoint_id}
        return await self._action(id, "resend", body, idempotency_key, EventResendResult)


class AsyncWebhookAttempts(AsyncResource[WebhookAttempt]):
    async def list(
        self,
        *,
        event_id: str | None = None,
        webhook_endpoint_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        size: int = 20,
    ) -> AsyncListResult[WebhookAttempt]:
        filters = {"event_id": event_id, "webhook_endpoint_id": webhook_endpoint_id, "status": status}
        return await self._list(page, size, filters)


# --- billing: one generic base, the calls each resource has, typed by its model (models.py) -------


class AsyncBillingResource(AsyncResource[M]):
    async def retrieve(self, id: str) -> M:
        return await self._retrieve(id)

    async def list(self, *, page: int = 1, size: int = 20, **filters: Any) -> AsyncListResult[M]:
        return await self._list(page, size, filters)


class _AsyncCreatable(AsyncBillingResource[M]):
    async def create(self, *, idempotency_key: str | None = None, **params: Any) -> M:
        return await self._create(params, idempotency_key)


class AsyncCheckoutSessions(_AsyncCreatable[CheckoutSession]):
    async def confirm(self, id: str, *, payment_method: str, idempotency_key: str | None = None) -> CheckoutSession:
        return await self._action(id, "confirm", {"payment_method": payment_method}, idempotency_key, self._model)


class AsyncCheckout:
    def __init__(self, client: AsyncRequester) -> None:
        self.sessions = AsyncCheckoutSessions(client, "/api/checkout-sessions", models.CheckoutSession)


class AsyncSubscriptions(_AsyncCreatable[Subscription]):
    async def update(self, id: str, **fields: Any) -> Subscription:
        return await self._update(id, fields)

    async def cancel(
        self, id: str, *, at_period_end: bool | None = None, idempotency_key: str | None = None
    ) -> Subscription:
        return await self._action(id, "cancel", {"at_period_end": at_period_end}, idempotency_key, self._model)

    async def pause(self, id: str, *, idempotency_key: str | None = None) -> Subscription:
        return await self._action(id, "pause", {}, idempotency_key, self._model)

    async def resume(self, id: str, *, idempotency_key: str | None = None) -> Subscription:
        return await self._action(id, "resume", {}, idempotency_key, self._model)


class AsyncInvoices(AsyncBillingResource[Invoice]):
    async def pay(self, id: str, *, payment_method: str | None = None, idempotency_key: str | None = None) -> Invoice:
        return await self._action(id, "pay", {"payment_method": payment_method}, idempotency_key, self._model)


class AsyncPaymentIntents(AsyncBillingResource[PaymentIntent]):
    async def refund(
        self, id: str, *, amount: str | None = None, idempotency_key: str | None = None, **params: Any
    ) -> Refund:
        """Refund all of it, or `amount` (a decimal string). Returns the refund."""
        body = {"amount": amount, **params}
        return await self._action(id, "refund", body, idempotency_key, models.Refund)


class AsyncRefunds(_AsyncCreatable[Refund]):
    pass


class AsyncTestClocks(_AsyncCreatable[TestClock]):
    __test__ = False  # not a pytest class

    async def advance(self, id: str, *, frozen_time: int, idempotency_key: str | None = None) -> TestClock:
        """Move the clock to `frozen_time` (unix seconds); what falls due meanwhile runs."""
        return await self._action(id, "advance", {"frozen_time": frozen_time}, idempotency_key, self._model)


class AsyncPaymentLinks(_AsyncCreatable[PaymentLink]):
    async def update(self, id: str, **fields: Any) -> PaymentLink:
        """Change a link; `active=False` deactivates it."""
        return await self._update(id, fields)


class AsyncBillingPortalSessions(AsyncResource[PortalSession]):
    async def create(self, *, idempotency_key: str | None = None, **params: Any) -> PortalSession:
        """A one-time portal `url` for `customer_id` (open within 5 minutes)."""
        return await self._create(params, idempotency_key)


class AsyncBillingPortal:
    def __init__(self, client: AsyncRequester) -> None:
        self.sessions = AsyncBillingPortalSessions(client, "/api/billing-portal/sessions", models.PortalSession)


class AsyncResources:
    """Every resource of one client, named as in the original SDK (in Python style)."""

    def __init__(self, client: AsyncRequester) -> None:
        self.webhook_endpoints = AsyncWebhookEndpoints(client, "/api/webhook-endpoints", WebhookEndpoint)
        self.event_destinations = AsyncEventDestinations(client, "/api/event-destinations", EventDestination)
        self.webhook_attempts = AsyncWebhookAttempts(client, "/api/webhook-attempts", WebhookAttempt)
        self.events = AsyncEvents(client, "/api/events", EventObject)
        self.customers = AsyncCustomers(client, "/api/customers", Customer)
        self.products = AsyncProducts(client, "/api/products", Product)
        self.prices = AsyncPrices(client, "/api/prices", Price)
        self.checkout = AsyncCheckout(client)
        self.subscriptions = AsyncSubscriptions(client, "/api/subscriptions", models.Subscription)
        self.invoices = AsyncInvoices(client, "/api/invoices", models.Invoice)
        self.payment_intents = AsyncPaymentIntents(client, "/api/payment-intents", models.PaymentIntent)
        self.refunds = AsyncRefunds(client, "/api/refunds", models.Refund)
        self.test_clocks = AsyncTestClocks(client, "/api/test-clocks", models.TestClock)
        self.payment_links = AsyncPaymentLinks(client, "/api/payment-links", models.PaymentLink)
        self.billing_portal = AsyncBillingPortal(client)

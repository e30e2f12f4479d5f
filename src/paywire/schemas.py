"""Request and response shapes, shared by the API (validation, OpenAPI) and the SDK.

Requests are strict (no type coercion, unknown fields refused) so a wrong field is a clear 400,
never a silent guess. Every string of every request, nested ones and metadata keys and values
included, is checked in one place (`Request`): NUL (PostgreSQL cannot store it; SQLite can, so
the two would disagree) and lone surrogates (not Unicode: UTF-8 cannot encode them) nowhere,
and no control character at all except tab, newline and carriage return in descriptions and
metadata values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

T = TypeVar("T")


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 metadata keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40:
            raise ValueError(f"metadata key {key[:40]!r} must be 1 to 40 characters")
        if len(item) > 500:
            raise ValueError(f"metadata value of {key!r} is longer than 500 characters")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]
ShortText = Annotated[str, Field(max_length=5000)]
ObjectId = Annotated[str, Field(min_length=1, max_length=40)]


# C0 controls, DEL and lone surrogates; the second leaves tab, newline and carriage return alone.
_BAD_IN_LINE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_BAD_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_TEXT_FIELDS = frozenset({"description"})  # free text: may span lines


def _check_string(value: str, pattern: re.Pattern[str], what: str) -> None:
    found = pattern.search(value)
    if found is not None:
        char = ord(found.group())
        kind = "a lone surrogate, not valid Unicode" if 0xD800 <= char <= 0xDFFF else "a control character"
        raise ValueError(f"{what}must not contain U+{char:04X} ({kind})")


def _check_strings(value: Any, text: bool, what: str = "") -> None:
    if isinstance(value, str):
        _check_string(value, _BAD_IN_TEXT if text else _BAD_IN_LINE, what)
    elif isinstance(value, dict):  # metadata: keys are names, values free text
        for key, item in value.items():
            _check_strings(key, False, f"key {key[:40]!r} ")
            _check_strings(item, True, f"value of {key[:40]!r} ")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_strings(item, text, what)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        # Nested requests (line items…) are models, checked by their own validator.
        _check_strings(value, info.field_name in _TEXT_FIELDS)
        return value


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# The SDK validates every answer with these models under this context. A closed set (a status, a
# mode) the server grows after a client was released must not break that client's calls: there an
# unknown value stays a plain `str`. The server validates without it, so its own answers and the
# OpenAPI document keep the closed set.
CLIENT_CONTEXT = {"keep_unknown_values": True}


def _keep_unknown_values_in_clients(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    try:
        return handler(value)
    except ValidationError:
        context = info.context
        if isinstance(value, str) and isinstance(context, dict) and context.get("keep_unknown_values"):
            return value
        raise


Open = WrapValidator(_keep_unknown_values_in_clients)
"""Marks a closed set in a response model: `Annotated[SubscriptionStatus, Open]`."""


# --- requests -----------------------------------------------------------------------------


class CustomerCreate(Request):
    email: Annotated[str, Field(max_length=320)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    description: ShortText | None = None
    metadata: Metadata | None = None
    test_clock_id: ObjectId | None = None  # the customer (and its subscriptions) live on this clock


class CustomerUpdate(Request):
    email: Annotated[str, Field(max_length=320)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    description: ShortText | None = None
    metadata: Metadata | None = None


class ProductCreate(Request):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: ShortText | None = None
    active: bool = True
    metadata: Metadata | None = None


class ProductUpdate(Request):
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    description: ShortText | None = None
    active: bool | None = None
    metadata: Metadata | None = None


Interval = Literal["day", "week", "month", "year"]


class Recurring(Request):
    interval: Interval
    interval_count: Annotated[int, Field(ge=1, le=365)] = 1


class PriceCreate(Request):
    product_id: ObjectId
    unit_amount: Annotated[str, Field(min_length=1, max_length=32, examples=["19.99"])]
    currency: Annotated[str, Field(min_length=3, max_length=3, examples=["usd"])]
    type: Literal["one_time", "recurring"] | None = None
    recurring: Recurring | None = None
    trial_period_days: Annotated[int, Field(ge=0, le=730)] | None = None
    nickname: Annotated[str, Field(max_length=256)] | None = None
    metadata: Metadata | None = None


class PriceUpdate(Request):
    active: bool | None = None
    nickname: Annotated[str, Field(max_length=256)] | None = None
    metadata: Metadata | None = None


EnabledEvents = Annotated[list[Annotated[str, Field(max_length=80)]], Field(min_length=1, max_length=100)]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://example.com/hook"])]


class WebhookEndpointCreate(Request):
    url: Url
    enabled_events: EnabledEvents
    description: ShortText | None = None
    metadata: Metadata | None = None


class WebhookEndpointUpdate(Request):
    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    description: ShortText | None = None
    metadata: Metadata | None = None
    status: Literal["enabled", "disabled"] | None = None


class RotateSecret(Request):
    expires_in: Annotated[int, Field(ge=0, le=7 * 86400)] = 86400


class ConsumerPosition(Request):
    # null: "before the first event" (a consumer registered while the log is still empty).
    last_event_id: ObjectId | None


# --- responses ----------------------------------------------------------------------------


class Paging(BaseModel):
    page: int
    size: int


class ListResponse(BaseModel, Generic[T]):
    count: int
    list: list[T]
    paging: Paging


class ApiObject(Response):
    id: str
    object: str
    livemode: bool
    metadata: dict[str, Any] = {}
    created: int
    created_at: str


class Customer(ApiObject):
    email: str | None
    name: str | None
    description: str | None
    test_clock_id: str | None = None


class Product(ApiObject):
    name: str
    description: str | None
    active: bool


class RecurringOut(BaseModel):
    interval: Interval
    interval_count: int


class Price(ApiObject):
    product_id: str
    unit_amount: str
    currency: str
    type: Literal["one_time", "recurring"]
    recurring: RecurringOut | None
    trial_period_days: int | None
    nickname: str | None
    active: bool


class WebhookEndpoint(ApiObject):
    url: str
    enabled_events: list[str]
    status: Literal["enabled", "disabled"]
    description: str | None
    api_version: str
    created_via: str
    updated_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str


class Secret(BaseModel):
    secret: str


class EventDataOut(BaseModel):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] = {}


class EventRequest(BaseModel):
    id: str | None
    idempotency_key: str | None


class EventObject(Response):
    id: str
    object: Literal["event"]
    type: str
    api_version: str
    livemode: bool
    created: int
    created_at: str
    object_type: str
    object_id: str
    data: EventDataOut
    request: EventRequest
    pending_webhooks: int
    metadata: dict[str, Any] = {}


class ConsumerPositionOut(BaseModel):
    name: str
    last_event_id: str | None
    updated: int


class EventTypeOut(BaseModel):
    type: str
    object_type: str
    description: str


# --- webhook delivery ---------------------------------------------------------------------


class EventResend(Request):
    webhook_endpoint_id: ObjectId | None = None


class EndpointRecover(Request):
    since: Annotated[int, Field(ge=0, description="Unix seconds: re-queue failed deliveries since then.")]


class WebhookAttempt(BaseModel):
    id: str
    object: Literal["webhook_attempt"]
    livemode: bool
    event_id: str
    webhook_endpoint_id: str
    status: Literal["succeeded", "failed"]
    response_status: int | None
    response_body: str | None
    retry_count: int
    duration_ms: int
    error: str | None
    error_type: str | None
    next_retry_at: str | None
    next_retry: int | None
    created: int
    created_at: str


class EventResendResult(BaseModel):
    object: Literal["event_resend"]
    event_id: str
    webhook_endpoint_ids: list[str]


class EndpointRecoverResult(BaseModel):
    object: Literal["webhook_endpoint_recovery"]
    webhook_endpoint_id: str
    since: int
    requeued: int


# --- event destinations (paywire.destinations) ---------------------------------------------

DestinationType = Literal["webhook", "rabbitmq", "nats", "redis"]
Ordering = Literal["none", "per_object"]
DestinationConfig = Annotated[dict[str, str | int | None], Field(max_length=20)]


class EventDestinationCreate(Request):
    type: DestinationType
    enabled_events: EnabledEvents
    config: DestinationConfig = Field(
        description="webhook {url}; rabbitmq {url, exchange, routing_key}; nats {url, subject, stream}; "
        "redis {url, stream, maxlen}. `routing_key`, `subject` and `stream` may use `{type}`."
    )
    ordering: Ordering = "none"
    description: ShortText | None = None
    metadata: Metadata | None = None


class EventDestinationUpdate(Request):
    enabled_events: EnabledEvents | None = None
    config: DestinationConfig | None = Field(None, description="keys given replace the stored ones")
    ordering: Ordering | None = None
    description: ShortText | None = None
    metadata: Metadata | None = None
    status: Literal["enabled", "disabled"] | None = None


class EventDestination(ApiObject):
    type: DestinationType
    enabled_events: list[str]
    config: dict[str, Any] = Field(description="the config, with any password in a URL masked")
    ordering: Ordering
    status: Literal["enabled", "disabled"]
    description: str | None
    api_version: str
    updated_at: str


class EventDestinationWithSecret(EventDestination):
    secret: str


class EventDestinationRecoverResult(BaseModel):
    object: Literal["event_destination_recovery"]
    event_destination_id: str
    since: int
    requeued: int

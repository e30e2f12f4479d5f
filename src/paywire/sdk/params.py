"""Keyword arguments of create and update calls, for type checkers and editors.

Each mirrors a request model of `paywire.schemas` (a unit test keeps the field names equal);
only the keys a caller passes are sent, so an update changes nothing else.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class RecurringParams(TypedDict, total=False):
    interval: Literal["day", "week", "month", "year"]
    interval_count: int


class CustomerUpdateParams(TypedDict, total=False):
    email: str | None
    name: str | None
    description: str | None
    metadata: dict[str, str] | None


class CustomerCreateParams(CustomerUpdateParams, total=False):
    test_clock_id: str | None  # the customer (and its subscriptions) live on that test clock


class ProductUpdateParams(TypedDict, total=False):
    name: str
    description: str | None
    active: bool
    metadata: dict[str, str] | None


class PriceUpdateParams(TypedDict, total=False):
    active: bool
    nickname: str | None
    metadata: dict[str, str] | None


class WebhookEndpointUpdateParams(TypedDict, total=False):
    url: str
    enabled_events: list[str]
    description: str | None
    metadata: dict[str, str] | None
    status: Literal["enabled", "disabled"]


class EventDestinationUpdateParams(TypedDict, total=False):
    enabled_events: list[str]
    config: dict[str, str | int | None]  # keys given replace the stored ones
    ordering: Literal["none", "per_object"]
    description: str | None
    metadata: dict[str, str] | None
    status: Literal["enabled", "disabled"]

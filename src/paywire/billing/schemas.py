"""Request and response shapes of the billing calls (strict requests: a wrong field is a 400)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from paywire.billing.statuses import (
    CheckoutPaymentStatus,
    CheckoutSessionStatus,
    InvoiceStatus,
    NftMintStatus,
    PaymentIntentStatus,
    RefundStatus,
    SubscriptionStatus,
    TestClockStatus,
)
from paywire.schemas import ApiObject, Metadata, ObjectId, Open, Request, Response, Url

Quantity = Annotated[int, Field(ge=1, le=10_000)]
PaymentMethod = Annotated[str, Field(min_length=1, max_length=80, examples=["pm_card_visa"])]
UnixTime = Annotated[int, Field(ge=0, le=32_503_680_000)]  # up to the year 3000
TrialDays = Annotated[int, Field(ge=0, le=730)]
CheckoutMode = Literal["payment", "subscription"]
Locale = Literal["auto", "en", "zh"]  # the payer pages' language; auto: the browser's Accept-Language


class LineItem(Request):
    price_id: ObjectId
    quantity: Quantity = 1


class SubscriptionData(Request):
    trial_period_days: TrialDays | None = None
    metadata: Metadata | None = None


class NftMintSettings(Request):
    enabled: bool = False


class CheckoutSessionCreate(Request):
    mode: CheckoutMode
    line_items: Annotated[list[LineItem], Field(min_length=1, max_length=20)]
    customer_id: ObjectId | None = None
    customer_email: Annotated[str, Field(max_length=320)] | None = None
    subscription_data: SubscriptionData | None = None
    nft_mint_settings: NftMintSettings | None = None
    success_url: Url | None = None
    cancel_url: Url | None = None
    expires_at: UnixTime | None = None
    locale: Locale | None = None
    metadata: Metadata | None = None


class CheckoutConfirm(Request):
    payment_method: PaymentMethod


class SubscriptionItemIn(Request):
    id: ObjectId | None = None  # an existing item (`si_…`) to change; else matched by price or position
    price_id: ObjectId
    quantity: Quantity = 1


class SubscriptionCreate(Request):
    customer_id: ObjectId
    items: Annotated[list[SubscriptionItemIn], Field(min_length=1, max_length=20)]
    default_payment_method: PaymentMethod | None = None
    trial_period_days: TrialDays | None = None
    test_clock_id: ObjectId | None = None
    metadata: Metadata | None = None


class SubscriptionUpdate(Request):
    items: Annotated[list[SubscriptionItemIn], Field(min_length=1, max_length=20)] | None = None
    proration_behavior: Literal["create_prorations", "none"] = "create_prorations"
    default_payment_method: PaymentMethod | None = None
    cancel_at_period_end: bool | None = None
    metadata: Metadata | None = None


class SubscriptionCancel(Request):
    at_period_end: bool = False


class InvoicePay(Request):
    payment_method: PaymentMethod | None = None


class PaymentIntentRefund(Request):
    amount: Annotated[str, Field(min_length=1, max_length=32, examples=["5.00"])] | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None
    metadata: Metadata | None = None


class RefundCreate(PaymentIntentRefund):
    payment_intent_id: ObjectId


class TestClockCreate(Request):
    __test__ = False
    frozen_time: UnixTime
    name: Annotated[str, Field(max_length=256)] | None = None
    metadata: Metadata | None = None


class TestClockAdvance(Request):
    __test__ = False
    frozen_time: UnixTime


# --- responses (the documented fields; objects carry a few more) -----------------------------


class CheckoutSession(ApiObject):
    mode: Annotated[CheckoutMode, Open]
    status: Annotated[CheckoutSessionStatus, Open]
    payment_status: Annotated[CheckoutPaymentStatus, Open]
    customer_id: str | None
    line_items: list[dict[str, Any]]
    currency: str
    amount_total: str
    expires_at: int
    payment_intent_id: str | None
    subscription_id: str | None
    nft_mint_status: Annotated[NftMintStatus, Open] | None
    nft_mint_details: dict[str, Any] | None
    url: str | None = None
    locale: str | None = None


class Subscription(ApiObject):
    customer_id: str
    status: Annotated[SubscriptionStatus, Open]
    items: list[dict[str, Any]]
    current_period_start: int
    current_period_end: int
    billing_cycle_anchor: int
    trial_start: int | None
    trial_end: int | None
    cancel_at_period_end: bool
    canceled_at: int | None
    ended_at: int | None


class Invoice(ApiObject):
    status: Annotated[InvoiceStatus, Open]
    lines: list[dict[str, Any]]
    total: str
    amount_due: str
    amount_paid: str


class PaymentIntent(ApiObject):
    amount: str
    currency: str
    status: Annotated[PaymentIntentStatus, Open] = Field(
        description="`processing`: the provider is being asked; `requires_action`: see `next_action`"
    )
    last_payment_error: dict[str, Any] | None
    next_action: dict[str, Any] | None = Field(
        None, description="requires_action: what the payer must do (`type`, `client_secret` for Stripe.js)"
    )


class Refund(ApiObject):
    amount: str
    currency: str
    payment_intent_id: str
    status: Annotated[RefundStatus, Open]


class TestClock(ApiObject):
    __test__ = False
    frozen_time: int
    status: Annotated[TestClockStatus, Open]
    name: str | None


class NftPublicKey(BaseModel):
    object: Literal["nft_public_key"]
    kid: str
    algorithm: Literal["Ed25519"]
    public_key: str
    public_key_pem: str
    token_format: str


# --- payer pages: payment links and customer portal sessions -------------------------------


class Redirect(Request):
    url: Url


class AfterCompletion(Request):
    """Stripe's shape: `{"type": "redirect", "redirect": {"url": …}}`, or `hosted_confirmation`
    (the built-in "Payment complete" page). `{CHECKOUT_SESSION_ID}` in the URL is replaced."""

    type: Literal["redirect", "hosted_confirmation"]
    redirect: Redirect | None = None


class LinkSubscriptionData(Request):
    trial_period_days: TrialDays | None = None


class PaymentLinkCreate(Request):
    line_items: Annotated[list[LineItem], Field(min_length=1, max_length=20)]
    subscription_data: LinkSubscriptionData | None = None
    after_completion: AfterCompletion | None = None
    active: bool = True
    locale: Locale = "auto"
    metadata: Metadata | None = None


class PaymentLinkUpdate(Request):
    active: bool | None = None
    after_completion: AfterCompletion | None = None
    locale: Locale | None = None
    metadata: Metadata | None = None


class PaymentLink(ApiObject):
    active: bool
    url: str
    mode: CheckoutMode
    currency: str
    line_items: list[dict[str, Any]]
    subscription_data: dict[str, Any] | None
    after_completion: dict[str, Any]
    locale: str


class PortalSessionCreate(Request):
    customer_id: ObjectId | None = None
    customer: ObjectId | None = None  # Stripe's name for customer_id
    return_url: Url | None = None
    locale: Locale = "auto"

    @model_validator(mode="after")
    def _one_customer(self) -> PortalSessionCreate:
        if self.customer_id is None and self.customer is None:
            raise ValueError("customer_id is required")
        if self.customer_id is not None and self.customer is not None and self.customer_id != self.customer:
            raise ValueError("customer and customer_id name different customers")
        return self


class PortalSession(Response):
    id: str
    object: str
    livemode: bool
    customer_id: str
    customer: str
    return_url: str | None
    locale: str
    url: Annotated[str, Field(description="Open within 5 minutes; works once.")]
    expires_at: int
    created: int
    created_at: str

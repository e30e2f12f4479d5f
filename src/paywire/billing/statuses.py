"""Every status a billing object stores or compares, one `StrEnum` per object kind.

Members are `str`: they bind to SQL and render to JSON as their value, byte for byte the
strings stored before these classes existed. Rows read back from the database hold plain
strings, which compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    """In its free trial: nothing charged until `trial_end`."""
    ACTIVE = "active"
    """Paid up for the current period."""
    PAST_DUE = "past_due"
    """A renewal invoice is open and its collection is being retried."""
    PAUSED = "paused"
    """Paused by the payer or merchant: no renewals, no charges, until resumed."""
    CANCELED = "canceled"
    """Ended: canceled now or at the end of its period."""
    INCOMPLETE = "incomplete"
    """Created, but its first invoice has not been paid yet."""
    INCOMPLETE_EXPIRED = "incomplete_expired"
    """Ended because its first invoice was never paid in time."""


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    """Being built; not yet payable (shown by the payer pages, never stored by the engine)."""
    OPEN = "open"
    """Finalized and awaiting payment."""
    PAID = "paid"
    """Paid in full."""
    VOID = "void"
    """Canceled: will never be paid."""
    UNCOLLECTIBLE = "uncollectible"
    """Collection gave up after the last retry."""


class PaymentIntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    """Not yet charged, or the last charge was declined."""
    REQUIRES_ACTION = "requires_action"
    """The card asks the payer to authenticate (3-D Secure) before the charge completes."""
    PROCESSING = "processing"
    """A charge is in flight with the provider."""
    SUCCEEDED = "succeeded"
    """Charged."""
    CANCELED = "canceled"
    """Abandoned (its checkout session expired) before it was charged."""


class CheckoutSessionStatus(StrEnum):
    OPEN = "open"
    """Waiting for the payer."""
    COMPLETE = "complete"
    """Paid (or needed no payment)."""
    EXPIRED = "expired"
    """Expired before completion."""


class CheckoutPaymentStatus(StrEnum):
    UNPAID = "unpaid"
    """No payment collected yet."""
    PAID = "paid"
    """Its payment intent succeeded."""
    NO_PAYMENT_REQUIRED = "no_payment_required"
    """Completed without a charge (nothing to pay)."""


class NftMintStatus(StrEnum):
    PENDING = "pending"
    """A receipt is to be minted for the completed session."""
    MINTED = "minted"
    """The receipt was minted."""
    ERROR = "error"
    """Minting failed; `nft_mint_details` says why."""


class RefundStatus(StrEnum):
    PENDING = "pending"
    """Asked of the provider; its answer has not arrived."""
    SUCCEEDED = "succeeded"
    """The provider refunded the money."""
    FAILED = "failed"
    """The provider refused or reversed the refund."""


class JobStatus(StrEnum):
    PENDING = "pending"
    """Due at `due`; the scheduler will run it."""
    DONE = "done"
    """Ran to completion."""
    FAILED = "failed"
    """Ran and raised; `error` says what."""
    CANCELED = "canceled"
    """Withdrawn before it ran (the object it served changed); may be rescheduled."""


class TestClockStatus(StrEnum):
    READY = "ready"
    """Idle: its frozen time may be advanced."""
    ADVANCING = "advancing"
    """An advance is running the jobs due up to `advance_to`."""

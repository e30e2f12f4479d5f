"""Errors the engine raises; the API turns each into the contract's error body and status."""

from __future__ import annotations

from typing import Any


class PaywireError(Exception):
    status: int = 400
    type: str = "invalid_request_error"
    code: str = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "code": self.code, "message": self.message, "param": self.param}}


class InvalidRequest(PaywireError):
    pass


class PayloadTooLarge(PaywireError):
    status = 413
    code = "payload_too_large"


class AuthenticationFailed(PaywireError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(PaywireError):
    status = 404
    code = "resource_missing"


class Conflict(PaywireError):
    status = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    type = "idempotency_error"
    code = "idempotency_key_reused"


class StateError(PaywireError):
    """A call that the object's current state does not allow (cancel a canceled subscription…)."""

    status = 409
    code = "invalid_state"


class CardDeclined(PaywireError):
    status = 402
    type = "card_error"
    code = "card_declined"


class RateLimited(PaywireError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class ServiceUnavailable(PaywireError):
    """The database is unreachable; the same call may be retried."""

    status = 503
    type = "api_error"
    code = "service_unavailable"


class StorageFull(PaywireError):
    """507: the database's disk is full; retrying helps only once space is freed."""

    status = 507
    type = "api_error"
    code = "storage_full"

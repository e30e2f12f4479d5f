"""Typed errors of the SDK, each carrying the API's error body `{"error": {type, code, message, param}}`."""

from __future__ import annotations

from typing import Any

import httpx


class PaywireAPIError(Exception):
    """A call that failed. `status` is None when no response arrived (APIConnectionError)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        body: Any = None,
        request_id: str | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.body = body
        self.request_id = request_id
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        head = f"{self.status} {self.code}" if self.status else (self.code or "connection error")
        text = f"{head}: {self.message}"
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


class AuthenticationError(PaywireAPIError):
    """401: the key is missing, unknown or revoked."""


class InvalidRequestError(PaywireAPIError):
    """400/404/422: a bad parameter or an unknown object; `param` names the field."""


class NotFoundError(InvalidRequestError):
    """404: no such object (in this key's mode)."""


class ConflictError(PaywireAPIError):
    """409: the object's state does not allow the call."""


class IdempotencyError(ConflictError):
    """409: the Idempotency-Key was used with another request, or that request is still running."""


class CardError(PaywireAPIError):
    """402: the payment method was declined."""


class RateLimitError(PaywireAPIError):
    """429: too many requests (retried automatically first)."""


class ServerError(PaywireAPIError):
    """5xx (retried automatically first)."""


class APIConnectionError(PaywireAPIError):
    """No response: connection refused, reset, or timed out (retried automatically first)."""


def _class_for(status: int, type: str | None) -> type[PaywireAPIError]:
    if status == 401:
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 409:
        return IdempotencyError if type == "idempotency_error" else ConflictError
    if status == 402:
        return CardError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return InvalidRequestError
    return PaywireAPIError


def error_from_response(response: httpx.Response) -> PaywireAPIError:
    """The typed error for a response of status 400 or more."""
    try:
        body: Any = response.json()
    except ValueError:  # a proxy's HTML page, say
        body = response.text
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or f"HTTP {response.status_code}: {str(body)[:200]}")
    return _class_for(response.status_code, error.get("type"))(
        message,
        status=response.status_code,
        type=error.get("type"),
        code=error.get("code"),
        param=error.get("param"),
        body=body,
        request_id=response.headers.get("request-id"),
        headers=response.headers,
    )

"""The OpenAPI document, with the error responses the API really gives.

FastAPI declares a `422 HTTPValidationError` on every operation with parameters, but Paywire
answers bad input with a 400 and the contract's body `{"error": {type, code, message, param}}`
(see `api/errors.py`), and never answers 422. Here every authenticated operation declares the
statuses it can answer with that body instead, so clients and schema checkers see the truth.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

ERROR_SCHEMA = "ErrorResponse"
REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
BODY_METHODS = {"post", "put", "patch", "delete"}  # the middleware reads (and size-limits) their bodies

DESCRIPTIONS = {
    "400": "Invalid request: a missing, unknown or malformed parameter",
    "401": "Missing, unknown or revoked API key",
    "402": "The card was declined",
    "404": "No such object in this mode",
    "409": "Conflict: the object's state does not allow it, or an Idempotency-Key was reused",
    "413": "Request body too large",
    "500": "Internal error",
    "503": "The database is unavailable, busy or too slow (the code says which); retry after Retry-After",
    "507": "The database's disk is full: nothing can be written until space is freed",
}


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str
    param: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _error_statuses(method: str, operation: dict[str, Any]) -> list[str]:
    if not operation.get("security"):
        return ["500", "503"]  # public, parameterless reads
    statuses = ["400", "401", "404", "500", "503"]
    if method in BODY_METHODS:
        statuses += ["409", "413", "507"]
    if method == "post":
        statuses.append("402")
    return sorted(statuses)


def _declare_errors(spec: dict[str, Any]) -> None:
    for methods in spec.get("paths", {}).values():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's default; Paywire answers 400 instead
            for status in _error_statuses(method, operation):
                responses.setdefault(
                    status,
                    {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": REF}}},
                )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error


def install(api: FastAPI) -> None:
    """Make `api.openapi()` (and `/openapi.json`) declare Paywire's real error responses."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            spec = generate()
            _declare_errors(spec)
            api.openapi_schema = spec
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]

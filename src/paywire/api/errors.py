"""Every failure answers the contract's body `{"error": {type, code, message, param}}`."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from paywire.db.engine import Outage, outage
from paywire.errors import PaywireError, ServiceUnavailable, StorageFull
from paywire.ops import metrics

log = logging.getLogger("paywire.api")


def error_response(exc: PaywireError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


# How each kind of database outage answers: the error, and its Retry-After (seconds) if retrying soon may work.
_OUTAGES: dict[Outage, tuple[PaywireError, str | None]] = {
    Outage.UNAVAILABLE: (
        ServiceUnavailable("the database is unavailable; retry the request", code="database_unavailable"),
        "1",
    ),
    Outage.TIMEOUT: (
        ServiceUnavailable(
            "the database did not finish the statement in time (statement timeout); retry the request",
            code="database_timeout",
        ),
        "1",
    ),
    Outage.POOL_EXHAUSTED: (
        ServiceUnavailable(
            "every database connection of this server is busy (connection pool exhausted); retry the request",
            code="database_pool_exhausted",
        ),
        "1",
    ),
    Outage.STORAGE_FULL: (
        StorageFull("the database's disk is full: nothing can be written until space is freed", code="storage_full"),
        None,
    ),
}


def outage_response(exc: BaseException) -> JSONResponse | None:
    """The answer to a database outage (503, or 507 for a full disk), or None if `exc` is not one."""
    kind = outage(exc)
    if kind is None:
        return None
    log.warning("database %s: %s", kind.value, exc)
    metrics.DATABASE_ERRORS.labels(kind.value).inc()
    error, retry_after = _OUTAGES[kind]
    return error_response(error, headers={"Retry-After": retry_after} if retry_after else None)


def internal_error() -> JSONResponse:
    error = PaywireError("internal error", code="internal_error")
    error.status, error.type = 500, "api_error"
    return error_response(error)


def _describe(error: dict[str, Any]) -> tuple[str, str | None]:
    """A validation error as (message, dotted param)."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "request body is not valid JSON", None
    if kind == "missing":
        return f"missing required field {param}", param
    if kind == "extra_forbidden":
        return f"unknown field {param}", param
    if kind == "model_attributes_type" or (kind == "dict_type" and not loc):
        return "request body must be a JSON object", None
    message = error.get("msg", "invalid value")
    return (f"{param}: {message}" if param else message), param


def install(app: FastAPI) -> None:
    @app.exception_handler(PaywireError)
    async def paywire_error(_request: Request, exc: PaywireError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _describe(exc.errors()[0]) if exc.errors() else ("invalid request", None)
        return error_response(PaywireError(message, param=param, code="parameter_invalid"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = PaywireError(str(exc.detail), code="not_found" if exc.status_code == 404 else "http_error")
        error.status = exc.status_code
        return error_response(error, headers=getattr(exc, "headers", None))

    # Database errors get their own handler: handlers of `Exception` run in Starlette's outermost
    # middleware, which re-raises after answering, so uvicorn logs a traceback and closes the
    # client's keep-alive connection (its next request then fails without an answer).
    @app.exception_handler(sa.exc.SQLAlchemyError)
    @app.exception_handler(OSError)
    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        response = outage_response(exc)
        if response is not None:
            return response
        log.exception("unexpected error")
        return internal_error()

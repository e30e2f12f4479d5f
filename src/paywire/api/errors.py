"""Every failure answers the contract's body `{"error": {type, code, message, param}}`."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from paywire.db.engine import is_unavailable
from paywire.errors import PaywireError, ServiceUnavailable

log = logging.getLogger("paywire.api")


def error_response(exc: PaywireError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


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
        if is_unavailable(exc):
            log.warning("database unavailable: %s", exc)
            unavailable = ServiceUnavailable(
                "the database is unavailable; retry the request", code="database_unavailable"
            )
            return error_response(unavailable, headers={"Retry-After": "1"})
        log.exception("unexpected error")
        error = PaywireError("internal error", code="internal_error")
        error.status, error.type = 500, "api_error"
        return error_response(error)

"""`/healthz`, `/readyz` and `/metrics`: served by `paywire serve` on its port, and by
`paywire worker --metrics-port` on a port of its own.

`/healthz`: the process is up. `/readyz`: the database answers, its schema is the one this
release expects, and a worker is alive somewhere (200, else 503 naming what failed).
`/metrics`: only from loopback clients, unless `PAYWIRE_METRICS_TOKEN` is set, in which case any
client that sends it as `Authorization: Bearer <token>` (and no one else).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from paywire import __version__
from paywire.db.migrate import alembic_config
from paywire.ops.heartbeat import live_workers
from paywire.ops.metrics import exposition
from paywire.services import Services

router = APIRouter(tags=["operations"])
CHECK_TIMEOUT = 2.0


@lru_cache(maxsize=1)
def expected_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/healthz", tags=["meta"])
async def health() -> dict[str, str]:
    """The process is up (it does not look at the database)."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", include_in_schema=False)  # an operator's probe, documented in deployment.md
async def ready(request: Request) -> JSONResponse:
    services = _services(request)
    checks: dict[str, Any] = {}
    try:
        async with services.db.read() as conn:
            current = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
        checks["migrations"] = (
            "ok" if current == expected_revision() else f"at {current}, expected {expected_revision()}"
        )
        workers = await live_workers(services.db, now=time.time())
        checks["worker"] = "ok" if workers else "no worker seen in the last 30 s (start `paywire worker`)"
    except Exception as exc:
        checks.setdefault("database", f"unavailable ({type(exc).__name__})")
    ready = all(value == "ok" for value in checks.values()) and len(checks) == 3
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )


def _may_scrape(request: Request, token: str | None) -> bool:
    if token:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services = _services(request)
    token = services.settings.metrics_token.get_secret_value() if services.settings.metrics_token else None
    if not _may_scrape(request, token):
        detail = (
            "send Authorization: Bearer <PAYWIRE_METRICS_TOKEN>"
            if token
            else "scrape from localhost, or set PAYWIRE_METRICS_TOKEN"
        )
        return JSONResponse(
            {"error": {"type": "authentication_error", "code": "metrics_forbidden", "message": detail, "param": None}},
            status_code=403,
        )
    return Response(await exposition(services.db), media_type=CONTENT_TYPE_LATEST)

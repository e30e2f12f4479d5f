"""schemathesis against `/openapi.json` of a real Paywire server: every route, bounded examples.

Checks: no 5xx, every status code declared, every response body and content type as declared,
and invalid input refused with a 4xx. Positive cases mostly aim at real objects (seeded through
the API in `seed.py`), so the fuzzer reaches the billing engine instead of stopping at 404s.

Excluded: `GET /api/events/stream`, Server-Sent Events that stay open for as long as the client
listens (a response never ends, so no check can run on it); `tests/integration/test_stream.py`
covers it.
"""

from __future__ import annotations

import asyncio
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from paywire.app import PaywireApp
from tests.hostile.live_server import ThreadedServer, threaded_server
from tests.hostile.seed import seed

MAX_EXAMPLES = 8  # per operation and generation mode: the whole run stays well under a minute
STREAM = "/api/events/stream"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]
# Path parameter or body field -> the seeded object it should name.
SEEDED = {
    "customer_id": "customer",
    "product_id": "product",
    "price_id": "price",
    "endpoint_id": "webhook_endpoint",
    "webhook_endpoint_id": "webhook_endpoint",
    "event_id": "event",
    "last_event_id": "event",
    "name": "event_consumer",
    "session_id": "checkout_session",
    "subscription_id": "subscription",
    "invoice_id": "invoice",
    "payment_intent_id": "payment_intent",
    "refund_id": "refund",
    "link_id": "payment_link",
    # Not `clock_id` (the advance path): one advance may legitimately run three years of renewals
    # (MAX_ADVANCE in billing/clock_advance.py), too slow to repeat for every generated example.
    "test_clock_id": "test_clock",
}


def _openapi() -> dict[str, Any]:
    """The document `/openapi.json` serves (built without a database; checked against the live one)."""
    unused = Path(tempfile.gettempdir()) / "paywire-openapi" / "never-opened.db"  # no connection is made
    document: dict[str, Any] = PaywireApp(f"sqlite:///{unused}", run_worker=False).api.openapi()
    return document


# Loaded at collection time: schemathesis' lazy `from_fixture` reads pytest internals that pytest 9
# no longer has (`Node._nodeid`). `test_served_document_is_the_one_fuzzed` ties the two together.
OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI).exclude(path=STREAM)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    database = tmp_path_factory.mktemp("schemathesis") / "paywire.db"
    with threaded_server(f"sqlite:///{database}") as server:
        yield server


@pytest.fixture(scope="module")
def seeded(fuzz_server: ThreadedServer) -> dict[str, str]:
    async def create() -> dict[str, str]:
        headers = {"Authorization": f"Bearer {fuzz_server.test_key}"}
        async with httpx.AsyncClient(base_url=fuzz_server.url, headers=headers, timeout=10) as client:
            return await seed(client, endpoint_url="http://127.0.0.1:9/hook")  # no worker: never sent

    return asyncio.run(create())


def _aim(value: Any, ids: dict[str, str], salt: str) -> Any:
    """Point `*_id` fields at seeded objects (three times in four, chosen stably from the case)."""
    if isinstance(value, list):
        return [_aim(item, ids, salt) for item in value]
    if not isinstance(value, dict):
        return value
    aimed = {}
    for key, item in value.items():
        known = ids.get(SEEDED.get(key, ""))
        if known and isinstance(item, str) and zlib.crc32(f"{salt}{key}{item}".encode()) % 4:
            aimed[key] = known
        else:
            aimed[key] = _aim(item, ids, salt)
    return aimed


def _aim_at_seeded(case: Any, ids: dict[str, str]) -> None:
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_negative:
        return  # a negative case must stay invalid
    if case.path_parameters:
        case.path_parameters = _aim(case.path_parameters, ids, case.path)
    if isinstance(case.body, dict):
        case.body = _aim(case.body, ids, case.path)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_route_conforms_and_never_500s(case: Any, fuzz_server: ThreadedServer, seeded: dict[str, str]) -> None:
    _aim_at_seeded(case, seeded)
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {fuzz_server.test_key}"},
        checks=CHECKS,
        timeout=15,
    )


def test_served_document_is_the_one_fuzzed(fuzz_server: ThreadedServer) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == OPENAPI


def test_the_openapi_document_lists_every_route(tmp_path: Path) -> None:
    """Every API route is in `/openapi.json` (so the run above reaches it) and declares its errors."""
    from fastapi.routing import APIRoute

    from paywire.api.app import ROUTERS

    spec = PaywireApp(f"sqlite:///{tmp_path / 'p.db'}", run_worker=False).api.openapi()
    # Routes kept out of the document on purpose (Stripe's webhook: called by Stripe, not by users).
    every = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and r.include_in_schema]
    routes = {(m.lower(), r.path) for r in every for m in r.methods or ()} | {("get", "/healthz")}
    documented = {(m, path) for path, ops in spec["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in spec["paths"].items():
        for method, operation in ops.items():
            assert "422" not in operation["responses"], (method, path)  # Paywire answers 400
            if operation.get("security"):
                for status in ("400", "401", "404"):
                    error = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert error == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)

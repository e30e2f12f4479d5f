"""Retries against real local HTTP servers on 127.0.0.1 (aiohttp) that fail on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from paywire.sdk import (
    APIConnectionError,
    AsyncPaywire,
    InvalidRequestError,
    Paywire,
    RateLimitError,
    ServerError,
)
from tests.conftest import free_port

CUSTOMER = {
    "id": "cus_1",
    "object": "customer",
    "livemode": False,
    "metadata": {},
    "created": 1764160000,
    "created_at": "2026-11-26T12:26:40Z",
    "email": None,
    "name": "Ada",
    "description": None,
}


def _error(status: int, type: str, code: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return status, {}, {"error": {"type": type, "code": code, "message": f"{code}!", "param": None}}


@dataclass
class Script:
    """Answers in order (the last one repeats); records every request it gets."""

    answers: list[tuple[int, dict[str, str], dict[str, Any]]]
    delays: list[float] = field(default_factory=list)  # seconds to stall before answering, by request
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (method, Idempotency-Key)

    async def handle(self, request: web.Request) -> web.Response:
        index = len(self.seen)
        self.seen.append((request.method, request.headers.get("Idempotency-Key")))
        if index < len(self.delays):
            await asyncio.sleep(self.delays[index])
        status, headers, body = self.answers[min(index, len(self.answers) - 1)]
        return web.json_response(body, status=status, headers=headers)

    @property
    def keys(self) -> set[str | None]:
        return {key for _, key in self.seen}


@pytest.fixture
async def script() -> AsyncIterator[tuple[Script, str]]:
    script = Script(answers=[])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield script, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


UNAVAILABLE = (
    503,
    {"Retry-After": "0"},
    {"error": {"type": "api_error", "code": "service_unavailable", "message": "retry", "param": None}},
)


async def test_503_twice_then_200_sync_keeps_one_idempotency_key(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [UNAVAILABLE, UNAVAILABLE, (200, {}, CUSTOMER)]

    def call() -> str:
        with Paywire("sk_test_x", url, max_retries=3) as payment:
            return payment.customers.create(name="Ada").id

    assert await asyncio.to_thread(call) == "cus_1"
    assert [method for method, _ in server.seen] == ["POST"] * 3
    assert len(server.keys) == 1 and None not in server.keys


async def test_503_twice_then_200_async(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [UNAVAILABLE, UNAVAILABLE, (200, {}, CUSTOMER)]
    async with AsyncPaywire("sk_test_x", url, max_retries=3) as payment:
        customer = await payment.customers.create(name="Ada", idempotency_key="mine")
    assert customer.name == "Ada" and len(server.seen) == 3 and server.keys == {"mine"}


async def test_429_is_retried_then_raised_with_its_body(script: tuple[Script, str]) -> None:
    server, url = script
    status, _, body = _error(429, "rate_limit_error", "rate_limited")
    server.answers = [(status, {"Retry-After": "0"}, body)]
    async with AsyncPaywire("sk_test_x", url, max_retries=2) as payment:
        with pytest.raises(RateLimitError) as limited:
            await payment.customers.create(name="Ada")
    assert len(server.seen) == 3 and len(server.keys) == 1
    assert limited.value.status == 429 and limited.value.body == body and limited.value.code == "rate_limited"


async def test_retry_after_is_honoured(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [(429, {"Retry-After": "0.3"}, {}), (200, {}, CUSTOMER)]
    async with AsyncPaywire("sk_test_x", url, retry_delay=0.001) as payment:
        started = time.monotonic()
        await payment.customers.retrieve("cus_1")
    assert 0.3 <= time.monotonic() - started < 2 and len(server.seen) == 2


async def test_5xx_without_retry_after_backs_off_then_raises(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [_error(500, "api_error", "internal_error")]
    async with AsyncPaywire("sk_test_x", url, max_retries=2, retry_delay=0.01) as payment:
        with pytest.raises(ServerError):
            await payment.customers.list()
    assert [method for method, key in server.seen] == ["GET"] * 3
    assert server.keys == {None}  # only POSTs carry a key


async def test_other_4xx_is_not_retried(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [_error(400, "invalid_request_error", "parameter_invalid")]
    async with AsyncPaywire("sk_test_x", url, max_retries=3) as payment:
        with pytest.raises(InvalidRequestError):
            await payment.customers.create(name="Ada")
    assert len(server.seen) == 1


async def test_a_timeout_is_retried_with_the_same_key(script: tuple[Script, str]) -> None:
    server, url = script
    server.answers = [(200, {}, CUSTOMER)]
    server.delays = [0.5]  # the first answer comes after the client gave up on it
    async with AsyncPaywire("sk_test_x", url, timeout=0.2, retry_delay=0.01) as payment:
        assert (await payment.customers.create(name="Ada")).id == "cus_1"
    assert len(server.seen) == 2 and len(server.keys) == 1


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return super().handle_request(request)


def test_connection_refused_is_an_api_connection_error_after_retries() -> None:
    transport = CountingTransport()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    payment = Paywire("sk_test_x", url, max_retries=2, retry_delay=0.01, transport=transport)
    with payment, pytest.raises(APIConnectionError) as refused:
        payment.webhook_endpoints.list()
    assert transport.calls == 3 and time.monotonic() - started < 2
    assert refused.value.status is None and "3 attempts" in str(refused.value)
    assert isinstance(refused.value.__cause__, httpx.ConnectError)

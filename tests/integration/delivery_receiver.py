"""A real webhook receiver for delivery tests: aiohttp on 127.0.0.1, verifying like a user would.

Each path behaves as its name says (`/ok`, `/fail`, `/gone`, …); every request is recorded with
its headers, body and whether `standardwebhooks` and `svix` accepted it for the path's secret.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import standardwebhooks
import svix.webhooks
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: dict[str, bool]  # secret -> standardwebhooks and svix both accepted

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
        svix.webhooks.Webhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


@dataclass
class Receiver:
    secrets: dict[str, list[str]] = field(default_factory=dict)  # path -> secrets to verify with
    failures: Counter[str] = field(default_factory=Counter)  # path -> failures left ("/flaky")
    delay: float = 0.0  # seconds each `/ok` request takes
    received: list[Received] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)  # per "path webhook-id" (delivery)
    path_in_flight: Counter[str] = field(default_factory=Counter)
    path_max_in_flight: Counter[str] = field(default_factory=Counter)
    accepted: list[Received] = field(default_factory=list)  # answered 2xx, in the order answered
    rng: random.Random = field(default_factory=lambda: random.Random(14))  # for "/random"
    fail_rate: float = 0.3  # of "/random" requests answered 500
    url: str = ""
    _runner: web.AppRunner | None = None

    def at(self, path: str) -> str:
        return f"{self.url}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        verified = {s: _verifies(s, body, headers) for s in self.secrets.get(path, [])}
        key = f"{path} {headers.get('webhook-id', '')}"
        self.in_flight[key] += 1
        self.path_in_flight[path] += 1
        self.path_max_in_flight[path] = max(self.path_max_in_flight[path], self.path_in_flight[path])
        self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])
        try:
            received = Received(path, headers, body, time.time(), verified)
            self.received.append(received)
            response = await self._respond(request.match_info["name"], path)
            if response.status < 300:
                self.accepted.append(received)
            return response
        finally:
            self.in_flight[key] -= 1
            self.path_in_flight[path] -= 1

    async def _respond(self, name: str, path: str) -> web.StreamResponse:
        if name == "ok":
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.Response(text="ok")
        if name == "fail":
            return web.Response(status=500, text="boom")
        if name == "gone":
            return web.Response(status=410, text="gone")
        if name == "redirect":
            raise web.HTTPFound(location="/ok")
        if name == "big":
            return web.Response(text="x" * 10_000)
        if name == "busy":
            return web.Response(status=503, text="busy", headers={"Retry-After": "3"})
        if name == "slow":
            await asyncio.sleep(3)  # past any test timeout
            return web.Response(text="late")
        if name == "random":
            if self.rng.random() < self.fail_rate:
                return web.Response(status=500, text="random failure")
            return web.Response(text="ok")
        if name == "flaky":
            if self.failures[path] > 0:
                self.failures[path] -= 1
                return web.Response(status=500, text="not yet")
            return web.Response(text="ok")
        return web.Response(status=404)


async def until(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until `check()` is true, or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)

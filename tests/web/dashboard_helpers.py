"""Shared by the dashboard tests: operators made through the engine, a flaky receiver, and a
real server whose first retry waits long enough for a test to press Resend itself."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from paywire.app import PaywireApp
from paywire.ops import operators
from tests.conftest import Server, new_key, start_server, stop_server

ADMIN = ("admin@example.com", "admin-password-1")
VIEWER = ("viewer@example.com", "viewer-password-1")


async def create_operator(app: PaywireApp, email: str, password: str, role: str = "admin") -> None:
    async with app.db.transaction() as tx:
        await operators.create_operator(tx, email, password, role=role, now=time.time())


@dataclass
class FlakyReceiver:
    """Answers 500 (with a body) to its first request, 200 to every later one."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        if len(self.bodies) == 1:
            return web.Response(status=500, text="receiver warming up: please retry")
        return web.Response(status=200, text="ok, got it")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[FlakyReceiver]:
    r = FlakyReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def slow_retry_server(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> AsyncIterator[Server]:
    """A real server on SQLite whose retries wait 10 minutes (Resend is what sends again)."""
    monkeypatch.setenv("PAYWIRE_WEBHOOK_RETRY_SCHEDULE", "600,600")
    app = PaywireApp(f"sqlite:///{tmp_path}/dashboard.db")
    uv, task, url = await start_server(app)
    try:
        yield Server(app, url, await new_key(app), await new_key(app, live=True))
    finally:
        await stop_server(uv, task)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browserless:
    """An httpx client that signs in like a browser (cookies, CSRF tokens from the forms)."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10, follow_redirects=False)
        self.token = ""

    async def get(self, path: str) -> httpx.Response:
        response = await self.http.get(path)
        found = CSRF.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.token
        return await self.http.post(path, data=form)

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        await self.get("/dashboard/sign-in")
        return await self.post("/dashboard/sign-in", {"email": email, "password": password, "next": "/dashboard/"})

    async def close(self) -> None:
        await self.http.aclose()

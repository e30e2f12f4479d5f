"""The shared web layer: static files from the package, security headers, CSRF, escaping."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from paywire.errors import PaywireError
from paywire.web.security import CSRF_COOKIE, check_csrf
from paywire.web.templating import environment, render
from tests.conftest import Server


async def test_static_files_ship_in_the_package_with_security_headers(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        css = await client.get("/assets/paywire.css")
        js = await client.get("/assets/time.js")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert ".badge" in css.text
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert css.headers["x-content-type-options"] == "nosniff"
    assert css.headers["x-frame-options"] == "DENY"


def _page_app() -> FastAPI:
    app = FastAPI()

    @app.get("/page")
    async def page(request: Request) -> HTMLResponse:
        return render(request, "base.html")

    @app.post("/form")
    async def form(request: Request) -> dict[str, str]:
        try:
            check_csrf(request, await request.form())
        except PaywireError as exc:
            return {"refused": exc.code}
        return {"ok": "yes"}

    return app


async def test_pages_send_csp_and_csrf_cookie_and_forms_need_the_token() -> None:
    transport = httpx.ASGITransport(app=_page_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/page")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["cache-control"] == "no-store"
        token = page.cookies[CSRF_COOKIE]
        cookie_header = page.headers["set-cookie"].lower()
        assert "httponly" in cookie_header and "samesite=lax" in cookie_header
        assert (await client.post("/form", data={})).json() == {"refused": "csrf_token_invalid"}
        assert (await client.post("/form", data={"csrf_token": "x" * 43})).json() == {"refused": "csrf_token_invalid"}
        other_site = await client.post("/form", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
        assert other_site.json() == {"refused": "csrf_token_invalid"}
        assert (await client.post("/form", data={"csrf_token": token})).json() == {"ok": "yes"}


def test_templates_escape_user_data() -> None:
    html = environment().from_string("<td>{{ name }}</td>").render(name="<script>alert(1)</script>")
    assert html == "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"

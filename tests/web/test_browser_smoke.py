"""The browser fixtures work: Debian's Chromium loads files served by a real Paywire server."""

from __future__ import annotations

from playwright.async_api import Page

from tests.conftest import Server
from tests.web.conftest import screenshot


async def test_chromium_loads_static_files_from_a_real_server(server: Server, page: Page) -> None:
    response = await page.goto(f"{server.url}/assets/paywire.css")
    assert response is not None and response.status == 200
    await page.set_content(
        '<!doctype html><link rel="stylesheet" href="/assets/paywire.css"><span class="badge badge-ok">ok</span>'
    )
    colour = await page.locator(".badge").evaluate("node => getComputedStyle(node).borderRadius")
    assert colour == "999px"  # the stylesheet applied
    path = await screenshot(page, "smoke-badge")
    assert path.stat().st_size > 0

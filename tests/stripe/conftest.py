"""localstripe (a fake Stripe API) as a subprocess on 127.0.0.1, and Paywire servers using it.

localstripe is started once per test session by `localstripe_launcher.py` (127.0.0.1 only,
state in memory, Stripe's Idempotency-Key replay). Tests tell their objects apart by the
metadata Paywire puts on every PaymentIntent (`paywire_payment_intent`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire.app import PaywireApp
from paywire.settings import Settings
from tests.conftest import Server, free_port, serving
from tests.web.conftest import browser, page  # noqa: F401  (the browser tests' fixtures)

LAUNCHER = Path(__file__).with_name("localstripe_launcher.py")
TEST_KEY = "sk_test_paywire_localstripe"
LIVE_KEY = "sk_live_paywire_localstripe"


@dataclass
class LocalStripe:
    url: str

    def client(self, key: str = TEST_KEY) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    async def payment_intents(self, paywire_intent: str | None = None) -> list[dict[str, Any]]:
        """Every PaymentIntent localstripe holds (for one Paywire payment intent, if given)."""
        found: list[dict[str, Any]] = []
        async with self.client() as client:
            after = None
            while True:
                params: dict[str, Any] = {"limit": 100}
                if after:
                    params["starting_after"] = after
                body = (await client.get("/v1/payment_intents", params=params)).json()
                found.extend(body["data"])
                if not body["has_more"]:
                    break
                after = body["data"][-1]["id"]
        if paywire_intent is not None:
            found = [p for p in found if (p.get("metadata") or {}).get("paywire_payment_intent") == paywire_intent]
        return found

    async def refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        async with self.client() as client:
            body = (await client.get("/v1/refunds", params={"payment_intent": payment_intent, "limit": 100})).json()
        return list(body["data"])


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    port = free_port()
    log = open(tmp_path_factory.mktemp("localstripe") / "localstripe.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(LAUNCHER), str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "localstripe exited at start"
        try:
            if httpx.get(f"{url}/js.stripe.com/v3/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "localstripe did not start within 20 s"
        time.sleep(0.05)
    yield LocalStripe(url)
    proc.terminate()
    proc.wait(10)
    log.close()


def stripe_settings(database_url: str, localstripe: LocalStripe, key: str = TEST_KEY, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url,
        stripe_secret_key=key,
        stripe_publishable_key="pk_test_paywire_localstripe",
        stripe_webhook_secret="whsec_paywire_localstripe",
        stripe_api_base=localstripe.url,
        stripe_js_url=f"{localstripe.url}/js.stripe.com/v3/",
        **extra,
    )


@pytest.fixture
async def stripe_server(database_url: str, localstripe: LocalStripe) -> AsyncIterator[Server]:
    """A Paywire server whose test mode charges through Stripe (localstripe)."""
    async with serving(PaywireApp(database_url, settings=stripe_settings(database_url, localstripe))) as running:
        yield running


@pytest.fixture
async def stripe_api(stripe_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with stripe_server.client() as client:
        yield client

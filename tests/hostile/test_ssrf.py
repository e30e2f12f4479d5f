"""SSRF: live-mode endpoints never reach loopback, private, link-local or reserved addresses.

Adds to `tests/integration/test_delivery.py` (which covers 127.0.0.1, `localhost`,
169.254.169.254 and `[::1]` literals at registration, and a connection to 127.0.0.1 refused when
the operator allowed it at registration only): 10.x and other private ranges, host names whose
DNS answer is private, updates, and DNS rebinding: a name that is public at registration and
loopback when the dispatcher connects.

DNS is faked through the event loop's `getaddrinfo`, the one seam both checks go through
(`netpolicy.check_endpoint_url` and aiohttp's default resolver). No test sends anything beyond
loopback: apps that register non-loopback URLs run without a dispatcher, and the rebinding test
rebinds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from paywire.app import PaywireApp
from paywire.webhooks import netpolicy
from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from tests.conftest import new_key, start_server, stop_server
from tests.integration.delivery_receiver import Receiver

PUBLIC = "93.184.215.14"  # what the fake DNS answers at registration; never connected to
LIVE = DeliveryConfig(timeout=1.0, schedule=(0.2,), jitter=0.0, poll_interval=0.1, allow_private_networks=False)

BLOCKED_LITERALS = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://10.0.0.1/hook",
    "http://10.255.1.2:9000/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/hook",  # 127.0.0.1 in hex shorthand
]
# name -> DNS answer at registration (private: refused at once).
PRIVATE_NAMES = {
    "intranet.paywire.test": ["10.0.0.7"],
    "metadata.paywire.test": ["169.254.169.254"],
    "loopback.paywire.test": ["127.0.0.1"],
    "loopback6.paywire.test": ["::1"],
    "mixed.paywire.test": [PUBLIC, "10.1.1.1"],  # one private answer is enough to refuse
}


class FakeDns:
    """`loop.getaddrinfo` with a fixed answer per name: one table for registration (asked with
    no port), another for the dispatcher's connections (asked with a port). IP literals resolve
    as usual; any other name fails, so no real DNS query leaves the machine."""

    def __init__(self, real: Any, registration: dict[str, list[str]], connect: dict[str, list[str]]) -> None:
        self.real = real
        self.registration = registration
        self.connect = connect
        self.asked: list[tuple[str, Any]] = []

    async def __call__(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.asked.append((name, port))
        table = self.registration if port is None else self.connect
        if name in table:
            return [_info(address, int(port or 0)) for address in table[name]]
        if not _numeric(name) and name != "localhost":
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not in the test's DNS")
        return await self.real(host, port, family=family, type=type, proto=proto, flags=flags)


def _numeric(name: str) -> bool:
    """An address the resolver parses without DNS (`10.0.0.1`, `::1`, and `2130706433` or `0x7f.1`)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        try:
            socket.inet_aton(name)
        except OSError:
            return False
    return True


def _info(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def _fake_dns(monkeypatch: pytest.MonkeyPatch, connect: dict[str, list[str]] | None = None) -> FakeDns:
    loop = asyncio.get_running_loop()
    fake = FakeDns(loop.getaddrinfo, dict(PRIVATE_NAMES) | {"rebind.paywire.test": [PUBLIC]}, connect or {})
    monkeypatch.setattr(loop, "getaddrinfo", fake)
    return fake


@pytest.fixture
async def live_api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a live key, and no dispatcher: nothing registered here is ever sent."""
    async with _live_api(database_url) as client:
        yield client


@contextlib.asynccontextmanager
async def _live_api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = PaywireApp(database_url, run_worker=False)
    uv, task, url = await start_server(app)
    try:
        headers = {"Authorization": f"Bearer {await new_key(app, live=True)}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as client:
            yield client
    finally:
        await stop_server(uv, task)


async def _register(api: httpx.AsyncClient, url: str) -> httpx.Response:
    return await api.post("/api/webhook-endpoints", json={"url": url, "enabled_events": ["*"]})


def _refused(response: httpx.Response, url: str) -> None:
    assert response.status_code == 400, (url, response.status_code, response.text)
    error = response.json()["error"]
    assert error["param"] == "url" and netpolicy.ALLOW_ENV in error["message"], (url, error)


async def test_private_literals_and_names_are_refused_at_registration_and_update(
    live_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_dns(monkeypatch)
    public = await _register(live_api, "http://rebind.paywire.test/hook")  # public at registration
    assert public.status_code == 200, public.text
    endpoint_id = public.json()["id"]
    urls = BLOCKED_LITERALS + [f"https://{name}/hook" for name in PRIVATE_NAMES]
    for url in urls:
        _refused(await _register(live_api, url), url)
        _refused(await live_api.put(f"/api/webhook-endpoints/{endpoint_id}", json={"url": url}), url)
    after = (await live_api.get(f"/api/webhook-endpoints/{endpoint_id}")).json()
    assert after["url"] == "http://rebind.paywire.test/hook"
    assert (await live_api.get("/api/webhook-endpoints")).json()["count"] == 1


async def test_the_operator_may_allow_private_networks(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch)
    monkeypatch.setenv(netpolicy.ALLOW_ENV, "1")  # read when the server starts, as an operator would set it
    async with _live_api(database_url) as allowed:
        for url in ("http://10.0.0.1/hook", "https://intranet.paywire.test/hook"):
            assert (await _register(allowed, url)).status_code == 200, url


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.1.2.3", "fe80::1%eth0", "0.0.0.0"]
)
def test_the_connect_time_guard_refuses_before_any_socket_exists(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    monkeypatch.setattr(socket, "socket", lambda *a, **k: made.append(a))
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, 80, 0, 0) if family == socket.AF_INET6 else (address, 80)
    with pytest.raises(netpolicy.BlockedAddress, match=netpolicy.BLOCKED_MARKER):
        netpolicy.guarded_socket((family, socket.SOCK_STREAM, 6, "", sockaddr))
    assert made == []


def test_public_addresses_pass_the_guard() -> None:
    for address in (PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.215.14"):
        assert not netpolicy.is_blocked(address), address
    for address in ("224.0.0.1", "ff02::1", "not an address", "", "192.0.2.1", "198.18.0.1", "240.0.0.1"):
        assert netpolicy.is_blocked(address), address


@pytest.fixture
async def live_hooks(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Receiver]]:
    """A live-mode API with a guarded dispatcher, and a receiver on 127.0.0.1."""
    app = PaywireApp(database_url, run_worker=False)
    app.background.append(Dispatcher(app.db, LIVE))
    receiver = await Receiver().start()
    uv, task, url = await start_server(app)
    try:
        headers = {"Authorization": f"Bearer {await new_key(app, live=True)}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as client:
            yield client, receiver
    finally:
        await stop_server(uv, task)
        await receiver.stop()


async def test_dns_rebinding_is_refused_at_connect_time(
    live_hooks: tuple[httpx.AsyncClient, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, receiver = live_hooks
    port = int(receiver.url.rsplit(":", 1)[1])
    # Public when registered; loopback (the receiver itself) when the dispatcher connects.
    dns = _fake_dns(monkeypatch, connect={"rebind.paywire.test": ["127.0.0.1"], "rebind6.paywire.test": ["::1"]})
    dns.registration["rebind6.paywire.test"] = [PUBLIC]
    ids = []
    for name in ("rebind.paywire.test", "rebind6.paywire.test"):
        registered = await _register(api, f"http://{name}:{port}/ok")
        assert registered.status_code == 200, registered.text
        ids.append(registered.json()["id"])
    assert (await api.post("/api/customers", json={"email": "a@example.com"})).status_code == 200
    for endpoint_id in ids:
        attempts = await _attempts(api, endpoint_id)
        assert attempts[0]["status"] == "failed" and attempts[0]["error_type"] == "ssrf_blocked", attempts
        assert attempts[0]["response_status"] is None and attempts[0]["next_retry_at"] is not None
    assert ("rebind.paywire.test", port) in dns.asked  # the dispatcher did resolve it again
    assert receiver.received == []  # refused before connecting: the receiver saw nothing


async def _attempts(api: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    for _ in range(200):
        found: list[dict[str, Any]] = (
            await api.get("/api/webhook-attempts", params={"webhook_endpoint_id": endpoint_id})
        ).json()["list"]
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no attempt for {endpoint_id}")

"""`paywire events|endpoints|listen` against a real server, run as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import httpx
from aiohttp import web

from paywire.webhooks import verify
from tests.conftest import Server, free_port

PAYWIRE = [sys.executable, "-m", "paywire.cli.main"]


async def _cli(server: Server, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PAYWIRE_URL": server.url, "PAYWIRE_API_KEY": server.test_key}
    proc = await asyncio.create_subprocess_exec(
        *PAYWIRE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_endpoints_and_events_commands_with_json(server: Server, api: httpx.AsyncClient) -> None:
    code, stdout, stderr = await _cli(
        server, "endpoints", "create", "https://example.com/hook", "--events", "customer.created", "--json"
    )
    assert code == 0, stderr
    created = json.loads(stdout)
    assert created["secret"].startswith("whsec_") and created["enabled_events"] == ["customer.created"]

    code, stdout, _ = await _cli(server, "endpoints", "update", created["id"], "--disable", "--json")
    assert code == 0 and json.loads(stdout)["status"] == "disabled"
    code, stdout, _ = await _cli(server, "endpoints", "list", "--json")
    listed = json.loads(stdout)
    assert listed["count"] == 1 and "secret" not in listed["list"][0]
    code, stdout, _ = await _cli(server, "endpoints", "list")
    assert code == 0 and created["id"] in stdout  # the Rich table for people

    customer = (await api.post("/api/customers", json={"name": "Ada"})).json()
    code, stdout, _ = await _cli(server, "events", "list", "--type", "customer.*", "--json")
    [event] = json.loads(stdout)["list"]
    assert event["object_id"] == customer["id"]
    code, stdout, _ = await _cli(server, "events", "retrieve", event["id"])
    assert json.loads(stdout)["id"] == event["id"]

    code, stdout, _ = await _cli(server, "endpoints", "delete", created["id"], "--json")
    assert code == 0 and json.loads(stdout)["deleted"] is True

    code, _, stderr = await _cli(server, "events", "retrieve", "evt_missing")
    assert code == 1 and "404" in stderr and "Traceback" not in stderr
    code, _, stderr = await _cli(server, "endpoints", "create", "ftp://nope")
    assert code == 1 and "url" in stderr


async def test_listen_forwards_signed_events_with_a_stable_secret(
    server: Server, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {
        **os.environ,
        "PAYWIRE_URL": server.url,
        "PAYWIRE_API_KEY": server.test_key,
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    secrets = []
    try:
        for round_ in range(2):
            proc = await asyncio.create_subprocess_exec(
                *PAYWIRE,
                "listen",
                "--forward-to",
                f"http://127.0.0.1:{port}/hook",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readline(), 30)
            secrets.append(re.search(rb"whsec_[A-Za-z0-9+/=]+", ready).group().decode())  # type: ignore[union-attr]
            await asyncio.sleep(0.5)  # the stream is open from now on
            customer = (await api.post("/api/customers", json={"name": f"round {round_}"})).json()
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert b"customer.created" in line and b"204" in line
            proc.terminate()
            await proc.wait()
            body, headers = received[-1]
            event = verify(body, headers, secrets[-1])
            assert event.object_id == customer["id"] and event.type == "customer.created"
    finally:
        await runner.cleanup()
    assert len(received) == 2 and secrets[0] == secrets[1]


async def test_destinations_commands_mask_the_connection_string(server: Server, api: httpx.AsyncClient) -> None:
    code, stdout, stderr = await _cli(
        server, "destinations", "create", "redis", "-c", "url=redis://:pw123@127.0.0.1:6379/0", "-c", "maxlen=500",
        "--ordering", "per_object", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    created = json.loads(stdout)
    assert created["type"] == "redis" and created["ordering"] == "per_object" and created["secret"].startswith("whsec_")
    assert created["config"] == {"url": "redis://:****@127.0.0.1:6379/0", "maxlen": 500}
    code, stdout, _ = await _cli(server, "destinations", "update", created["id"], "-c", "stream=s1", "--json")
    assert code == 0 and json.loads(stdout)["config"]["stream"] == "s1"
    code, stdout, _ = await _cli(server, "destinations", "list")
    assert code == 0 and created["id"] in stdout and "pw123" not in stdout
    code, stdout, _ = await _cli(server, "destinations", "recover", created["id"], "--since", "0", "--json")
    assert code == 0 and json.loads(stdout)["requeued"] == 0
    code, stdout, _ = await _cli(server, "destinations", "delete", created["id"], "--json")
    assert code == 0 and json.loads(stdout)["deleted"] is True
    code, _, stderr = await _cli(server, "destinations", "create", "nats", "-c", "url=http://x")
    assert code == 1 and "config.url" in stderr

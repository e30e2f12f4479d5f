"""Slow clients against a real `paywire serve`: connections that never finish their request head
(slowloris), or send nothing, are closed after `--header-timeout`; normal requests meanwhile work.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

HEADER_TIMEOUT = 1.0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "paywire.cli.main",
        "serve",
        "--no-worker",
        "--port",
        str(port),
        "--database-url",
        f"sqlite:///{tmp_path / 'paywire.db'}",
        "--header-timeout",
        str(HEADER_TIMEOUT),
    ]
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "paywire serve did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the server closed the connection (EOF or reset) within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_connections_that_never_finish_their_headers_are_closed(serve: str) -> None:
    port = int(serve.rsplit(":", 1)[1])
    n = 300  # below --limit-concurrency (default 2048): past it, uvicorn answers new requests 503
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    for i, (_reader, writer) in enumerate(conns):
        if i % 10:  # most send part of a head; every tenth sends nothing at all
            writer.write(b"GET /api/customers HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await asyncio.gather(*(writer.drain() for _, writer in conns))
    opened = time.monotonic()

    # Meanwhile a normal client is served, and one that drips bytes is cut off like the rest.
    async with httpx.AsyncClient(base_url=serve, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/customers")).status_code == 401
    drip_reader, drip = await asyncio.open_connection("127.0.0.1", port)
    drip.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # one full request, kept alive
    assert (await drip_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    for _ in range(4):  # then the next head, a byte at a time, never finished
        drip.write(b"G")
        await asyncio.sleep(0.4)

    closed = await asyncio.gather(*(_closed_within(reader, HEADER_TIMEOUT + 3) for reader, _ in conns))
    took = time.monotonic() - opened
    assert all(closed), f"{closed.count(False)} of {n} slow connections still open after {took:.1f} s"
    assert await _closed_within(drip_reader, HEADER_TIMEOUT + 3), "the byte-dripping keep-alive connection"
    for _, writer in [*conns, (None, drip)]:
        writer.close()
    async with httpx.AsyncClient(base_url=serve, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_slow_request_body_or_slow_app_is_not_cut_by_the_header_timeout(serve: str) -> None:
    """The deadline is for the head only: once the headers are in, a request takes its time."""
    port = int(serve.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"name": "slow"}'
    writer.write(b"POST /api/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: %d\r\n\r\n" % len(body))
    await asyncio.sleep(HEADER_TIMEOUT + 0.5)
    writer.write(body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 401"), head  # answered (no key sent), not cut off
    writer.close()

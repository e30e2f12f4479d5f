"""A real Paywire server on 127.0.0.1 in a background thread, for synchronous test clients.

schemathesis calls the API with `requests` from ordinary (sync) test functions, so the server
needs a loop of its own. The app runs without its worker: generated webhook endpoints may name
any host, and no test may send traffic beyond loopback.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from paywire.app import PaywireApp
from tests.conftest import free_port, new_key


@dataclass(frozen=True)
class ThreadedServer:
    url: str
    test_key: str
    live_key: str


@contextmanager
def threaded_server(database_url: str) -> Iterator[ThreadedServer]:
    """Serve a fresh PaywireApp (API only) until the block ends."""
    app = PaywireApp(database_url, run_worker=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app.api, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Paywire test server did not start")
        time.sleep(0.01)
    try:
        test_key = asyncio.run_coroutine_threadsafe(new_key(app), loop).result(10)
        live_key = asyncio.run_coroutine_threadsafe(new_key(app, live=True), loop).result(10)
        yield ThreadedServer(f"http://127.0.0.1:{port}", test_key, live_key)
    finally:
        app.drain()
        server.should_exit = True
        thread.join(15)
        loop.close()

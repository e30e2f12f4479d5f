"""Run localstripe for the tests: bound to 127.0.0.1, its state in memory, Stripe's idempotency.

localstripe's own `start()` binds every interface (`::`) and keeps its state in one fixed file
(`/tmp/localstripe.pickle`) shared by every run on the machine. This launcher serves the same
aiohttp application on 127.0.0.1 only, keeps the state in this process (no file), and adds what
Stripe documents and localstripe lacks: a POST repeated with the same `Idempotency-Key` is
answered with the first response instead of being carried out again.

Usage: python localstripe_launcher.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web
from localstripe import resources, server

resources.Store.try_load_from_disk = lambda self: None  # type: ignore[method-assign]
resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]

_answered: dict[str, tuple[int, bytes]] = {}


@web.middleware
async def idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)  # type: ignore[no-any-return]
    slot = f"{request.path}\n{key}"
    if slot in _answered:
        status, body = _answered[slot]
        return web.Response(
            status=status, body=body, content_type="application/json", headers={"Idempotent-Replayed": "true"}
        )
    response = await handler(request)
    if response.status < 500 and isinstance(response, web.Response) and isinstance(response.body, bytes):
        _answered[slot] = (response.status, response.body)
    return response  # type: ignore[no-any-return]


def main() -> None:
    port = int(sys.argv[1])
    server.app.middlewares.insert(0, idempotency)
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

"""Run localstripe for the tests: bound to 127.0.0.1, its state in memory, Stripe's idempotency,
and a Stripe.js test double that can create PaymentMethods.

localstripe's own `start()` binds every interface (`::`) and keeps its state in one fixed file
(`/tmp/localstripe.pickle`) shared by every run on the machine. This launcher serves the same
aiohttp application on 127.0.0.1 only, keeps the state in this process (no file), and adds what
Stripe documents and localstripe lacks: a POST repeated with the same `Idempotency-Key` is
answered with the first response instead of being carried out again.

It also serves `stripe_js_double.js` at `/js.stripe.com/v3/` in place of localstripe's own fake
Stripe.js (whose `createPaymentMethod` does nothing), and accepts the publishable key on
`POST /v1/payment_methods` as Stripe does for Stripe.js (`key=pk_…` in the form body; localstripe
accepts it only on tokens, sources and 3-D Secure). Both are test doubles of Stripe's, disclosed
in docs/providers.md. Two more gaps of localstripe are filled as Stripe behaves: `off_session`
and `use_stripe_sdk` are accepted on `POST /v1/payment_intents/{id}/confirm` (and ignored, as
localstripe ignores `off_session` on create), and `DELETE /_config/idempotency` forgets every
idempotency key, as Stripe does after 24 hours.

Usage: python localstripe_launcher.py PORT
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
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


STRIPE_JS = Path(__file__).with_name("stripe_js_double.js")


@web.middleware
async def stripe_js(request: web.Request, handler: Any) -> web.StreamResponse:
    """The Stripe.js test double, and the publishable key on the call it makes."""
    if request.method == "GET" and request.path == "/js.stripe.com/v3/":
        return web.Response(text=STRIPE_JS.read_text(), content_type="application/javascript")
    if request.method == "POST" and request.path == "/v1/payment_methods" and "Authorization" not in request.headers:
        form = await request.post()
        key = form.get("key")
        if not isinstance(key, str) or not key.startswith("pk_"):
            return await handler(request)  # type: ignore[no-any-return]  # localstripe answers 401
        data = server.unflatten_data(form)
        for private in ("key", "payment_user_agent", "referrer"):
            data.pop(private, None)
        try:
            made = resources.PaymentMethod._api_create(**data)
        except server.UserError as exc:
            return exc.to_response()  # type: ignore[no-any-return]
        return server.json_response(made._export())  # type: ignore[no-any-return]
    confirm = re.fullmatch(r"/v1/payment_intents/(pi_\w+)/confirm", request.path)
    if request.method == "POST" and confirm and server.get_api_key(request) is not None:
        data = await server.get_post_data(request) or {}
        # Stripe takes these here; localstripe refuses them (and ignores off_session on create).
        data.pop("off_session", None)
        data.pop("use_stripe_sdk", None)
        try:
            confirmed = resources.PaymentIntent._api_confirm(confirm.group(1), **data)
        except server.UserError as exc:
            return exc.to_response()  # type: ignore[no-any-return]
        return server.json_response(confirmed._export())  # type: ignore[no-any-return]
    if request.method == "DELETE" and request.path == "/_config/idempotency":
        _answered.clear()  # Stripe forgets keys after 24 hours
        return web.Response()
    return await handler(request)  # type: ignore[no-any-return]


def main() -> None:
    port = int(sys.argv[1])
    server.app.middlewares.insert(0, idempotency)
    server.app.middlewares.insert(1, stripe_js)
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

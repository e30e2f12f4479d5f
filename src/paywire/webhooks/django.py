"""Django view decorator: `@verify_webhook(SECRET)`; the view receives `event=` as a keyword argument.

The decorated view is CSRF-exempt (webhooks are authenticated by their signature instead).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, cast

from django.http import HttpRequest, HttpResponseBadRequest  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]

from paywire.events.event import Event
from paywire.webhooks.verify import (
    DEFAULT_TOLERANCE,
    SecretSource,
    WebhookVerificationError,
    secret_getter,
    verify,
)

View = Callable[..., Any]


def verify_webhook(secret: SecretSource, *, tolerance: int = DEFAULT_TOLERANCE) -> Callable[[View], View]:
    """Verify the request; call the view with `event=Event`, or return HttpResponseBadRequest (JSON)."""
    get_secret = secret_getter(secret)

    def check(request: HttpRequest) -> Event | HttpResponseBadRequest:
        try:
            return verify(request.body, request.headers, get_secret(), tolerance=tolerance)
        except WebhookVerificationError as exc:
            return HttpResponseBadRequest(json.dumps({"error": str(exc)}), content_type="application/json")

    def decorator(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                result = check(request)
                if isinstance(result, Event):
                    return await view(request, *args, event=result, **kwargs)
                return result

            return cast(View, csrf_exempt(async_wrapper))

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            result = check(request)
            return view(request, *args, event=result, **kwargs) if isinstance(result, Event) else result

        return cast(View, csrf_exempt(wrapper))

    return decorator

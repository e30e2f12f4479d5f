"""Flask view decorator: `@verify_webhook(SECRET)`; the view receives `event=` as a keyword argument."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from flask import jsonify, request

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
    """Verify the request; call the view with `event=Event`, or answer 400 `{"error": ...}`."""
    get_secret = secret_getter(secret)

    def check() -> Event | tuple[Any, int]:
        try:
            return verify(request.get_data(cache=True), request.headers, get_secret(), tolerance=tolerance)
        except WebhookVerificationError as exc:
            return jsonify(error=str(exc)), 400

    def decorator(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                result = check()
                return await view(*args, event=result, **kwargs) if isinstance(result, Event) else result

            return async_wrapper

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = check()
            return view(*args, event=result, **kwargs) if isinstance(result, Event) else result

        return wrapper

    return decorator

"""One call to the API, written once for both clients.

`attempts()` is the whole call as a generator (sans-I/O): it yields a request to send or a
delay to sleep, is sent back what happened, and returns the final response or raises the typed
error. The sync and async drivers below only do the I/O, so the retry loop lives in one place.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Mapping
from typing import Any

import anyio
import httpx

from paywire.sdk.errors import APIConnectionError, error_from_response
from paywire.sdk.retries import RetryPolicy

Step = httpx.Request | float  # send this request, or sleep this many seconds
Reply = httpx.Response | httpx.TransportError | None  # what the driver sends back (None after a sleep)
Attempts = Generator[Step, Reply, Any]


def build_request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    idempotency_key: str | None = None,
) -> httpx.Request:
    headers: dict[str, str] = {}
    if method == "POST":
        # Made here, once per call, so that every retry of the call carries the same key.
        headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
    query = {name: value for name, value in (params or {}).items() if value is not None}
    return client.build_request(method, path, params=query, json=json, headers=headers)


def attempts(request: httpx.Request, policy: RetryPolicy) -> Attempts:
    """Send `request` until it succeeds or the policy gives up; return the decoded JSON body."""
    retry = 0
    while True:
        outcome = yield request
        assert outcome is not None
        retry += 1
        delay = policy.delay(retry, outcome)
        if delay is None:
            break
        yield delay
    if isinstance(outcome, httpx.TransportError):
        raise APIConnectionError(
            f"could not reach Paywire at {request.url.scheme}://{request.url.netloc.decode()} "
            f"after {retry} attempt{'s' if retry > 1 else ''}: {outcome!r}",
        ) from outcome
    if outcome.status_code >= 400:
        raise error_from_response(outcome)
    return outcome.json() if outcome.content else None


def run_sync(client: httpx.Client, steps: Attempts) -> Any:
    outcome: Reply = None
    try:
        while True:
            step = steps.send(outcome)
            if isinstance(step, httpx.Request):
                try:
                    outcome = client.send(step)
                except httpx.TransportError as exc:
                    outcome = exc
            else:
                time.sleep(step)
                outcome = None
    except StopIteration as done:
        return done.value


async def run_async(client: httpx.AsyncClient, steps: Attempts) -> Any:
    outcome: Reply = None
    try:
        while True:
            step = steps.send(outcome)
            if isinstance(step, httpx.Request):
                try:
                    outcome = await client.send(step)
                except httpx.TransportError as exc:
                    outcome = exc
            else:
                await anyio.sleep(step)
                outcome = None
    except StopIteration as done:
        return done.value

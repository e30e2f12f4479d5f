"""`Paywire` and `AsyncPaywire`: configuration, the HTTP client, and the resources."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from paywire import __version__
from paywire.sdk import _http
from paywire.sdk._sse import SSEDecoder
from paywire.sdk.async_resources import AsyncResources
from paywire.sdk.errors import error_from_response
from paywire.sdk.resources import Resources
from paywire.sdk.retries import RetryPolicy

DEFAULT_BASE_URL = "http://127.0.0.1:8800"


def _settings(api_key: str | None, base_url: str | None) -> tuple[str, dict[str, str]]:
    key = api_key or os.environ.get("PAYWIRE_API_KEY")
    if not key:
        raise ValueError("no Paywire API key: pass api_key=… or set PAYWIRE_API_KEY (sk_test_… or sk_live_…)")
    url = (base_url or os.environ.get("PAYWIRE_URL") or DEFAULT_BASE_URL).rstrip("/")
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json",
        "User-Agent": f"paywire-python/{__version__}",
    }
    return url, headers


class Paywire(Resources):
    """The sync client. `Paywire()` reads `PAYWIRE_API_KEY` and `PAYWIRE_URL`.

    Every POST carries an `Idempotency-Key` (yours, or a new uuid4 per call), so the automatic
    retries on connection errors, 429 and 5xx never do a thing twice.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        retry_delay: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        url, headers = _settings(api_key, base_url)
        self.base_url = url
        # `retry_policy` replaces `max_retries` and `retry_delay` when given.
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries, initial_delay=retry_delay)
        # follow_redirects stays off: a redirected POST would lose its body and key.
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)
        super().__init__(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Any API call: the decoded JSON body, or a typed error (after retries)."""
        request = _http.build_request(
            self._http, method, path, params=params, json=json, idempotency_key=idempotency_key
        )
        return _http.run_sync(self._http, _http.attempts(request, self.retry_policy))

    @contextlib.contextmanager
    def stream(
        self, path: str, *, params: Mapping[str, Any] | None = None, read_timeout: float = 60.0
    ) -> Iterator[Iterator[tuple[str, bytes]]]:
        """One connection to a server-sent-events endpoint (`/api/events/stream`): its messages
        as (event type, data). Not retried: a typed error for a refusal, httpx's on a cut."""
        request = _stream_request(self._http, path, params, read_timeout)
        response = self._http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response)
            decoder = SSEDecoder()
            yield (message for chunk in response.iter_bytes() for message in decoder.feed(chunk))
        finally:
            response.close()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncPaywire(AsyncResources):
    """The async client: the same resources, each call awaited."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        retry_delay: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        url, headers = _settings(api_key, base_url)
        self.base_url = url
        # `retry_policy` replaces `max_retries` and `retry_delay` when given.
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries, initial_delay=retry_delay)
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, transport=transport)
        super().__init__(self)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        request = _http.build_request(
            self._http, method, path, params=params, json=json, idempotency_key=idempotency_key
        )
        return await _http.run_async(self._http, _http.attempts(request, self.retry_policy))

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, params: Mapping[str, Any] | None = None, read_timeout: float = 60.0
    ) -> AsyncIterator[AsyncIterator[tuple[str, bytes]]]:
        """One connection to a server-sent-events endpoint (`/api/events/stream`): its messages
        as (event type, data). Not retried: a typed error for a refusal, httpx's on a cut."""
        request = _stream_request(self._http, path, params, read_timeout)
        response = await self._http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            yield _messages(response)
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _stream_request(
    http: httpx.Client | httpx.AsyncClient, path: str, params: Mapping[str, Any] | None, read_timeout: float
) -> httpx.Request:
    query = {name: value for name, value in (params or {}).items() if value is not None}
    # The server sends a heartbeat every 15 s: a read that waits longer than `read_timeout` means
    # the connection is gone.
    timeout = httpx.Timeout(10.0, read=read_timeout)
    return http.build_request("GET", path, params=query, headers={"Accept": "text/event-stream"}, timeout=timeout)


async def _messages(response: httpx.Response) -> AsyncIterator[tuple[str, bytes]]:
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for message in decoder.feed(chunk):
            yield message

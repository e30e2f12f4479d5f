"""`Paywire` and `AsyncPaywire`: configuration, the HTTP client, and the resources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from paywire import __version__
from paywire.sdk import _http
from paywire.sdk.async_resources import AsyncResources
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
    ) -> None:
        url, headers = _settings(api_key, base_url)
        self.base_url = url
        self.retry_policy = RetryPolicy(max_retries=max_retries, initial_delay=retry_delay)
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
    ) -> None:
        url, headers = _settings(api_key, base_url)
        self.base_url = url
        self.retry_policy = RetryPolicy(max_retries=max_retries, initial_delay=retry_delay)
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

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

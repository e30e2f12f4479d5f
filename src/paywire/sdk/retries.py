"""When to retry a call and how long to wait: one policy for the sync and the async client."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

# Failures where the request may not have reached the server, or its answer was lost. Safe to
# repeat: a POST carries the same Idempotency-Key on every attempt, so the server replays it.
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0  # a longer Retry-After is capped: a caller should not hang for hours

    def delay(self, retry: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before retry number `retry` (from 1), or None: give up with `outcome`."""
        if retry > self.max_retries or not self.should_retry(outcome):
            return None
        if isinstance(outcome, httpx.Response):
            retry_after = _retry_after(outcome)
            if retry_after is not None:
                return min(retry_after, self.max_retry_after)
        return self.backoff(retry)

    def backoff(self, retry: int) -> float:
        """Exponential, with "equal jitter" so that many clients failing together spread out."""
        # (the exponent is capped: a policy that retries for ever must not overflow the float)
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** min(retry - 1, 64))
        return ceiling * random.uniform(0.5, 1.0)

    @staticmethod
    def should_retry(outcome: httpx.Response | Exception) -> bool:
        if isinstance(outcome, Exception):
            return isinstance(outcome, RETRYABLE_ERRORS)
        status = outcome.status_code
        if status == 429 or status >= 500:
            return True
        # The first attempt timed out on our side but is still running on the server: once it
        # finishes, the same key replays its answer.
        return status == 409 and _error_code(outcome) == "idempotency_key_in_use"


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is not used by Paywire)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None

"""One HTTP POST of one delivery, and what came of it (never raises for network trouble)."""

from __future__ import annotations

import asyncio
import errno
import time
from dataclasses import dataclass
from functools import lru_cache

import aiohttp
from yarl import URL

from paywire import __version__
from paywire.webhooks.delivery import Job
from paywire.webhooks.netpolicy import BLOCKED_MARKER
from paywire.webhooks.signing import signature_headers

BODY_EXCERPT_BYTES = 4096
USER_AGENT = f"Paywire/{__version__}"


@dataclass(slots=True)  # not frozen: one per attempt, and frozen ones are slow to create
class SendOutcome:
    """The result of one attempt, as the attempts log stores it."""

    job: Job
    ok: bool
    status: int | None
    body: str | None
    duration_ms: int
    error_type: str | None
    error: str | None
    retry_after: str | None
    finished: float  # wall-clock time the attempt ended
    give_up: bool = False  # failed for good: no retry (a destination's verdict)
    disable: bool = False  # failed for good, and disable the destination (what a 410 does)


def _classify(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(error class, message) for a failed request; the class is what the dashboard filters on."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout", f"no response within {timeout:g} s"
    os_error = getattr(exc, "os_error", None)
    if BLOCKED_MARKER in text or BLOCKED_MARKER in str(os_error):
        return "ssrf_blocked", str(os_error)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns_error", text
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED or "refused" in text.lower():
            return "connection_refused", text
        return "connection_error", text
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection_reset", "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "connection_reset", text
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid_url", text
    return "connection_error", f"{type(exc).__name__}: {text}"


@lru_cache(maxsize=1024)
def _parsed(url: str) -> URL:
    """Endpoint URLs parsed once, not per request."""
    return URL(url)


@lru_cache(maxsize=8)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


async def send(session: aiohttp.ClientSession, job: Job, *, timeout: float) -> SendOutcome:
    """POST the signed event; 2xx is success, anything else (redirects included) a failure."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signature_headers(job.secrets, job.event_id, int(time.time()), job.body),
    }
    started = time.monotonic()
    status: int | None = None
    excerpt: str | None = None
    retry_after: str | None = None
    error_type: str | None = None
    error: str | None = None
    try:
        async with session.post(
            _parsed(job.url),
            data=job.body,
            headers=headers,
            allow_redirects=False,
            timeout=_timeout(timeout),
        ) as response:
            status = response.status
            retry_after = response.headers.get("retry-after")
            # Read one byte past the excerpt: a body that ends within it leaves the connection
            # reusable; a longer one is cut off (aiohttp then closes that connection).
            raw = b""
            while len(raw) <= BODY_EXCERPT_BYTES and not response.content.at_eof():
                chunk = await response.content.read(BODY_EXCERPT_BYTES + 1 - len(raw))
                if not chunk:
                    break
                raw += chunk
            excerpt = raw[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")
    except Exception as exc:  # every network failure is an attempt outcome, not a crash
        error_type, error = _classify(exc, timeout)
    ok = error_type is None and status is not None and 200 <= status < 300
    if error_type is None and status is not None and not ok:
        error_type = "http_status"
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    return SendOutcome(
        job=job,
        ok=ok,
        status=status,
        body=excerpt,
        duration_ms=int((time.monotonic() - started) * 1000),
        error_type=error_type,
        error=error,
        retry_after=retry_after,
        finished=time.time(),
    )

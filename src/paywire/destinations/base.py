"""The destination interface: render a claimed delivery into a message, send it, classify it.

Every transport carries the same message: the event JSON as its body, and the Standard Webhooks
headers (`webhook-id` = the event id, `webhook-timestamp`, `webhook-signature` over
`id.timestamp.body` with the destination's secrets), so one verifier
(`paywire.webhooks.verify`) serves them all and consumers de-duplicate on the id.

What came of an attempt is an `SendOutcome`: `ok`; else a retry on the schedule (the default),
`give_up` (failed for good, no retry), or `disable` (failed for good, and the destination is
disabled, as an HTTP 410 does). A failure with no `status` (nothing answered: refused, timed
out, broker unreachable) also counts towards the dispatcher backing the destination off.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paywire.webhooks.delivery import Job
from paywire.webhooks.sender import SendOutcome
from paywire.webhooks.signing import signature_headers

__all__ = ["Destination", "Job", "Message", "SendOutcome", "failure", "render", "success"]


@dataclass(slots=True)
class Message:
    """One event as every transport sends it."""

    id: str  # the event id: `webhook-id`, AMQP message_id, Nats-Msg-Id
    type: str  # the event type (routing keys and subjects may use it)
    body: bytes  # the event JSON
    headers: dict[str, str]  # webhook-id, webhook-timestamp, webhook-signature


def render(job: Job, now: float | None = None) -> Message:
    headers = signature_headers(job.secrets, job.event_id, int(now if now is not None else time.time()), job.body)
    # The claim read the type with the event; decoding the body for it cost ~10 µs per message.
    event_type = job.event_type or json.loads(job.body)["type"]
    return Message(job.event_id, event_type, job.body, headers)


class Destination(Protocol):
    """One destination's transport, pooled by the dispatcher for as long as its config stands."""

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        """Send one delivery; never raises for trouble with the destination (it is an outcome)."""
        ...

    async def close(self) -> None: ...


async def send_batch(destination: Destination, jobs: Sequence[Job], *, timeout: float) -> list[SendOutcome]:
    """Send several deliveries concurrently: one outcome each, in order."""
    return list(await asyncio.gather(*(destination.send(job, timeout=timeout) for job in jobs)))


def success(job: Job, started: float, *, detail: str | None = None) -> SendOutcome:
    return SendOutcome(
        job=job,
        ok=True,
        status=None,
        body=detail,
        duration_ms=int((time.monotonic() - started) * 1000),
        error_type=None,
        error=None,
        retry_after=None,
        finished=time.time(),
    )


def failure(
    job: Job, started: float, error_type: str, error: str, *, give_up: bool = False, disable: bool = False
) -> SendOutcome:
    return SendOutcome(
        job=job,
        ok=False,
        status=None,
        body=None,
        duration_ms=int((time.monotonic() - started) * 1000),
        error_type=error_type,
        error=error,
        retry_after=None,
        finished=time.time(),
        give_up=give_up,
        disable=disable,
    )


def classify(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(error class, message) of a broker client's exception: never its connection string."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", f"no confirmation within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused", "connection refused"
    if isinstance(exc, OSError):
        return "connection_error", f"{type(exc).__name__}: {exc.strerror or exc}"
    return "broker_error", f"{type(exc).__name__}: {exc}"


def scrub(text: str, url: str) -> str:
    """`text` without the connection string's password (a client's error may quote the URL)."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "****")
    return text


def format_key(template: str, message: Message) -> str:
    """A routing key or subject: `{type}` stands for the event type."""
    return template.replace("{type}", message.type)


def config_value(config: dict[str, Any], key: str, default: Any = None) -> Any:
    value = config.get(key)
    return default if value in (None, "") else value

"""Receiver side of Standard Webhooks: check a delivery and return its Event (standard library only)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from paywire.events.event import Event
from paywire.webhooks.signing import secret_key_bytes

DEFAULT_TOLERANCE = 300
_TIMESTAMP_RE = re.compile(r"\d{1,15}", re.ASCII)

SecretSource = str | Sequence[str] | Callable[[], str | Sequence[str]]


class WebhookVerificationError(Exception):
    """The request is not an authentic, fresh Paywire webhook; the message says why."""


class HeadersLike(Protocol):
    """Anything with `.items()` yielding (name, value) pairs: dicts, Starlette/Werkzeug/Django headers."""

    def items(self) -> Iterable[tuple[Any, Any]]: ...


def verify(
    body: bytes | str,
    headers: Mapping[str, str] | HeadersLike,
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Event:
    """Verify a webhook delivery and return its Event; raise WebhookVerificationError otherwise."""
    try:
        return _verify(body, headers, secret, tolerance, time.time() if now is None else now)
    except WebhookVerificationError:
        raise
    except Exception as exc:  # never leak anything else to the caller
        raise WebhookVerificationError(f"invalid webhook: {type(exc).__name__}") from exc


def secret_getter(secret: SecretSource) -> Callable[[], str | Sequence[str]]:
    """Return a zero-argument getter (for framework helpers); a fixed secret is checked now."""
    if callable(secret):
        return secret
    for s in [secret] if isinstance(secret, str) else secret:
        secret_key_bytes(s)
    return lambda: secret


def _verify(body: object, headers: object, secret: object, tolerance: float, now: float) -> Event:
    keys = _keys(secret)
    raw = _body_bytes(body)
    lowered = _lower(headers)
    msg_id = _header(lowered, "webhook-id", "svix-id")
    ts_text = _header(lowered, "webhook-timestamp", "svix-timestamp").strip()
    sig_header = _header(lowered, "webhook-signature", "svix-signature")

    if not _TIMESTAMP_RE.fullmatch(ts_text):
        raise WebhookVerificationError(f"invalid webhook-timestamp {ts_text[:32]!r}: expected unix seconds")
    timestamp = int(ts_text)
    if now - timestamp > tolerance:
        raise WebhookVerificationError(f"message timestamp too old ({int(now - timestamp)} s ago)")
    if timestamp - now > tolerance:
        raise WebhookVerificationError(f"message timestamp is in the future ({int(timestamp - now)} s ahead)")

    given = _v1_signatures(sig_header)
    if not given:
        raise WebhookVerificationError("webhook-signature has no valid v1 signature")
    content = f"{msg_id}.{timestamp}.".encode() + raw
    if not _matches(keys, content, given):
        raise WebhookVerificationError("no matching signature found")
    return _parse_event(raw)


def _keys(secret: object) -> list[bytes]:
    secrets = [secret] if isinstance(secret, str) else secret
    if not isinstance(secrets, Sequence) or not secrets:
        raise WebhookVerificationError("no webhook secret configured")
    try:
        return [secret_key_bytes(s) for s in secrets]
    except (ValueError, TypeError) as exc:
        raise WebhookVerificationError(f"invalid webhook secret: {exc}") from exc


def _body_bytes(body: object) -> bytes:
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise WebhookVerificationError("body is not valid UTF-8") from exc
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise WebhookVerificationError(f"body must be bytes or str, not {type(body).__name__}")


def _lower(headers: object) -> dict[str, object]:
    items = getattr(headers, "items", None)
    if not callable(items):
        raise WebhookVerificationError("headers must be a mapping of header names to values")
    lowered: dict[str, object] = {}
    for name, value in items():
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(name, str):
            lowered[name.lower()] = value
    return lowered


def _header(headers: dict[str, object], name: str, fallback: str) -> str:
    value = headers.get(name) or headers.get(fallback)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value is None or value == "":
        raise WebhookVerificationError(f"missing required header: {name}")
    if not isinstance(value, str):
        raise WebhookVerificationError(f"header {name} must be a string")
    return value


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _matches(keys: list[bytes], content: bytes, given: list[bytes]) -> bool:
    ok = False
    for key in keys:
        expected = hmac.digest(key, content, "sha256")
        for candidate in given:
            ok |= hmac.compare_digest(expected, candidate)
    return ok


def _parse_event(raw: bytes) -> Event:
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookVerificationError("body is not valid UTF-8 JSON") from exc
    if not isinstance(payload, dict) or payload.get("object", "event") != "event":
        raise WebhookVerificationError("body is not a Paywire event")
    try:
        return Event.from_dict(payload)
    except (ValueError, OverflowError) as exc:
        raise WebhookVerificationError(f"body is not a Paywire event: {exc}") from exc

"""Each destination type's `config`: the keys it takes, checked (a 400 naming the key), masked.

A connection string may hold credentials: the API shows it with its password replaced by
`****` (`masked`), and it is stored encrypted with the rest of the config.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from paywire.errors import InvalidRequest

SCHEMES = {
    "rabbitmq": ("amqp", "amqps"),
    "nats": ("nats", "tls"),
    "redis": ("redis", "rediss", "unix"),
}
KEYS = {
    "webhook": {"url"},
    "rabbitmq": {"url", "exchange", "routing_key"},
    "nats": {"url", "subject", "stream"},
    "redis": {"url", "stream", "maxlen"},
}
_NAME = re.compile(r"^[A-Za-z0-9_.{}\-:*>]{1,255}$")  # routing keys, subjects, stream names
MASK = "****"


def _fail(key: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"config.{key} {message}", param=f"config.{key}")


def check(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config of a `kind` destination, checked; unknown and missing keys are 400s."""
    allowed = KEYS[kind]
    for key in config:
        if key not in allowed:
            raise _fail(key, f"is not a {kind} setting (it takes {', '.join(sorted(allowed))})")
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise _fail("url", "is required")
    if kind == "webhook":
        return {"url": url}
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port validates it)
    except ValueError as exc:
        raise _fail("url", f"is not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES[kind]:
        raise _fail("url", f"must start with {' or '.join(s + '://' for s in SCHEMES[kind])}")
    if parts.scheme != "unix" and not parts.hostname:
        raise _fail("url", "has no host")
    checked: dict[str, Any] = {"url": url}
    for key in sorted(allowed - {"url"}):
        value = config.get(key)
        if value is None:
            continue
        if key == "maxlen":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _fail(key, "must be a whole number, 0 or more (0: not trimmed)")
        elif not isinstance(value, str):
            raise _fail(key, "must be a string")
        elif key == "exchange":
            if len(value) > 255 or any(ch.isspace() for ch in value):
                raise _fail(key, 'must be an exchange name without spaces ("": the default exchange)')
        elif not _NAME.match(value):
            raise _fail(key, "may hold letters, digits and _ . - : * > and {type}")
        checked[key] = value
    if kind == "rabbitmq" and "exchange" not in checked:
        raise _fail("exchange", 'is required (an existing exchange; "" for the default exchange)')
    return checked


def masked_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def masked(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "url": masked_url(str(config.get("url", "")))}

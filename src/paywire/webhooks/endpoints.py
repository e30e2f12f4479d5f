"""Webhook endpoints: registration, updates, secrets and their rotation.

The secret is shown only by create, `/secret` and `/rotate-secret`; `render` never includes it.
It is stored encrypted (`paywire.secrets_at_rest`): the current one in `secret`, with the
endpoint's id in its associated data, the rotated-out ones each in `previous_secrets`. Read them
with `secret` (the current one) and `valid_secrets` (every one that signs), never from the row.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import objects
from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.db.schema import webhook_endpoints
from paywire.errors import InvalidRequest, NotFound
from paywire.events import catalogue, targets
from paywire.events.log import API_VERSION
from paywire.ids import new_id
from paywire.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from paywire.secrets_at_rest import Keyring, is_encrypted
from paywire.webhooks.delivery import cancel_pending, recover, resume
from paywire.webhooks.endpoint_secrets import config_aad, previous_aad, secret_aad
from paywire.webhooks.signing import generate_secret


def render(m: Any) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "webhook_endpoint"),
        "url": m["url"],
        "enabled_events": list(m["enabled_events"]),
        "status": m["status"],
        "description": m["description"],
        "api_version": m["api_version"],
        "created_via": m["created_via"],
        "updated_at": iso(m["updated"]),
    }


async def fetch(
    conn: AsyncConnection, endpoint_id: str, livemode: bool, *, lock: bool = False, kind: str | None = "webhook"
) -> sa.RowMapping:
    """The row of `endpoint_id` in this mode; a 404 also if it is a destination of another type
    than `kind` (`/api/webhook-endpoints` is the view of the webhook type; None: any type)."""
    row = await objects.fetch(conn, webhook_endpoints, endpoint_id, livemode, lock=lock)
    if kind is not None and row["type"] != kind:
        raise NotFound(f"no such webhook endpoint: {endpoint_id!r}", param="id")
    return row


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host, or a 400 naming the problem."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"url is not a valid URL: {exc}", param="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("url must start with http:// or https://", param="url")
    if not parts.hostname:
        raise InvalidRequest("url has no host", param="url")
    if "@" in parts.netloc:  # it would be stored, and shown in every retrieve and list
        raise InvalidRequest(
            "url must not contain credentials (user:password@); authenticate the receiver with the "
            "webhook signature, or a secret path or query parameter",
            param="url",
        )
    if port == 0:
        raise InvalidRequest("url has port 0", param="url")
    if any(ch.isspace() for ch in url):
        raise InvalidRequest("url must not contain white space", param="url")
    return url


def check_events(names: list[str]) -> list[str]:
    unknown = catalogue.unknown_types(names)
    if unknown:
        raise InvalidRequest(f"unknown event type {unknown[0]!r} in enabled_events", param="enabled_events")
    return sorted(set(names), key=names.index)


async def secret(
    conn: AsyncConnection, keyring: Keyring, endpoint_id: str, *, livemode: bool, kind: str | None = "webhook"
) -> str:
    """The endpoint's current signing secret, decrypted (404 if there is no such endpoint)."""
    row = await fetch(conn, endpoint_id, livemode, kind=kind)
    return keyring.decrypt(row["secret"], secret_aad(endpoint_id))


def encrypted_secrets(m: Any, keyring: Keyring, *, plain_only: bool = False) -> dict[str, Any] | None:
    """The values that store this endpoint's secrets under the keyring's current key (`plain_only`:
    only plain ones are encrypted, values under older keys are left), or None if nothing changes."""
    endpoint_id = m["id"]

    def redo(value: str, aad: str) -> str | None:
        if plain_only and is_encrypted(value):
            return None
        if not keyring.needs_encryption(value):
            return None
        return keyring.encrypt(keyring.decrypt(value, aad), aad)

    values: dict[str, Any] = {}
    new_secret = redo(m["secret"], secret_aad(endpoint_id))
    if new_secret is not None:
        values["secret"] = new_secret
    previous, changed = [], False
    for entry in m["previous_secrets"]:
        new_value = redo(entry["secret"], previous_aad(endpoint_id))
        changed = changed or new_value is not None
        previous.append({**entry, "secret": new_value or entry["secret"]})
    if changed:
        values["previous_secrets"] = previous
    config = m.get("config")  # a broker destination's config (never stored plain)
    if config is not None and not plain_only:
        new_config = redo(config, config_aad(endpoint_id))
        if new_config is not None:
            values["config"] = new_config
    return values or None


async def create(
    tx: Tx, params: WebhookEndpointCreate, *, livemode: bool, now: float, created_via: str = "api"
) -> dict[str, Any]:
    endpoint_id = new_id("we")
    plain = generate_secret()
    row = {
        "id": endpoint_id,
        "livemode": livemode,
        "url": check_url(params.url),
        "enabled_events": check_events(params.enabled_events),
        "status": "enabled",
        "description": params.description,
        "metadata": params.metadata or {},
        "api_version": API_VERSION,
        "created_via": created_via,
        "secret": tx.keyring.encrypt(plain, secret_aad(endpoint_id)),
        "previous_secrets": [],
        "created": int(now),
        "updated": int(now),
    }
    await tx.conn.execute(webhook_endpoints.insert(), row)
    await targets.bump(tx.conn)
    return {**render(row), "secret": plain}


async def update(
    tx: Tx,
    endpoint_id: str,
    params: WebhookEndpointUpdate,
    *,
    livemode: bool,
    now: float,
    kind: str | None = "webhook",
) -> dict[str, Any]:
    row = await fetch(tx.conn, endpoint_id, livemode, lock=True, kind=kind)
    values = params.model_dump(exclude_unset=True)
    for required in ("url", "enabled_events", "status"):
        if required in values and values[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    if "url" in values:
        check_url(values["url"])
    if "enabled_events" in values:
        values["enabled_events"] = check_events(values["enabled_events"])
    if "metadata" in values:
        values["metadata"] = objects.merge_metadata(row["metadata"], values["metadata"])
    if values.get("status") == "enabled" and row["status"] == "disabled":
        # Re-enabling starts a fresh 5-day window for the auto-disable rule, and the deliveries
        # that waited while it was disabled go out now.
        values["disabled_reason"] = None
        values["last_success"] = now
        values["failing_since"] = None
        await resume(tx, endpoint_id, now=now)
    elif values.get("status") == "disabled" and row["status"] == "enabled":
        values["disabled_reason"] = "manual"
    changed = objects.changes(row, values)
    if changed:
        await tx.conn.execute(
            webhook_endpoints.update().where(webhook_endpoints.c.seq == row["seq"]).values(**changed, updated=int(now))
        )
        if changed.keys() & {"status", "enabled_events"}:
            await targets.bump(tx.conn)
    return render({**row, **changed, "updated": int(now) if changed else row["updated"]})


async def delete(
    tx: Tx, endpoint_id: str, *, livemode: bool, now: float, kind: str | None = "webhook"
) -> dict[str, Any]:
    """Delete the endpoint; deliveries still pending to it are canceled (their attempts stay)."""
    row = await fetch(tx.conn, endpoint_id, livemode, lock=True, kind=kind)
    await tx.conn.execute(webhook_endpoints.delete().where(webhook_endpoints.c.seq == row["seq"]))
    await targets.bump(tx.conn)
    await cancel_pending(tx, endpoint_id, now=now, reason="endpoint deleted")
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}


async def rotate_secret(
    tx: Tx, endpoint_id: str, *, expires_in: int, livemode: bool, now: float, kind: str | None = "webhook"
) -> dict[str, str]:
    """A new secret; the old one keeps signing for `expires_in` seconds (0: stops at once)."""
    row = await fetch(tx.conn, endpoint_id, livemode, lock=True, kind=kind)
    keyring = tx.keyring
    aad = previous_aad(endpoint_id)
    # Every secret kept is (re-)encrypted under the current key (a plain one, left by an older
    # release, too); the current one moves to previous_secrets, whose associated data differs.
    kept = [
        {**s, "secret": keyring.encrypt(keyring.decrypt(s["secret"], aad), aad)}
        for s in row["previous_secrets"]
        if s["expires"] > now
    ]
    if expires_in > 0:
        old = keyring.decrypt(row["secret"], secret_aad(endpoint_id))
        kept.append({"secret": keyring.encrypt(old, aad), "expires": now + expires_in})
    new_secret = generate_secret()
    await tx.conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.seq == row["seq"])
        .values(secret=keyring.encrypt(new_secret, secret_aad(endpoint_id)), previous_secrets=kept, updated=int(now))
    )
    return {"secret": new_secret}


def listing(livemode: bool) -> sa.Select[Any]:
    """Webhook endpoints only: destinations of other types are listed by `/api/event-destinations`."""
    return sa.select(webhook_endpoints).where(
        webhook_endpoints.c.livemode == livemode, webhook_endpoints.c.type == "webhook"
    )


async def recover_endpoint(
    tx: Tx, endpoint_id: str, *, livemode: bool, since: float, now: float, kind: str | None = "webhook"
) -> int:
    """`recover` for an endpoint of this mode (404 if there is none, or it is not of `kind`)."""
    await fetch(tx.conn, endpoint_id, livemode, kind=kind)
    return await recover(tx, endpoint_id, since=since, now=now)

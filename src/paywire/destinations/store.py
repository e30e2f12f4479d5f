"""Event destinations as rows of `webhook_endpoints`: create, update, delete, render.

A webhook destination is exactly a webhook endpoint (`/api/webhook-endpoints` is the view of
that type, ids `we_`); a broker destination (ids `ed_`) keeps `url` empty and its config, as
JSON, encrypted with the keyring under its own associated data (`endpoint_secrets.config_aad`). Every
destination has a signing secret: every transport carries the Standard Webhooks headers.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire import objects
from paywire.clock import iso
from paywire.db.engine import Tx
from paywire.db.schema import webhook_endpoints
from paywire.destinations import config as configs
from paywire.errors import InvalidRequest, NotFound
from paywire.events import targets
from paywire.events.log import API_VERSION
from paywire.ids import new_id
from paywire.schemas import EventDestinationCreate, EventDestinationUpdate
from paywire.secrets_at_rest import Keyring
from paywire.webhooks import endpoint_secrets, endpoints
from paywire.webhooks.signing import generate_secret

e = webhook_endpoints


def stored_config(m: Any, keyring: Keyring) -> dict[str, Any]:
    """The destination's config, decrypted (a webhook's is its url)."""
    if m["type"] == "webhook":
        return {"url": m["url"]}
    return dict(json.loads(keyring.decrypt(m["config"], endpoint_secrets.config_aad(m["id"]))))


def render(m: Any, keyring: Keyring) -> dict[str, Any]:
    return {
        **objects.common_fields(m, "event_destination"),
        "type": m["type"],
        "enabled_events": list(m["enabled_events"]),
        "config": configs.masked(stored_config(m, keyring)),
        "ordering": m["ordering"],
        "status": m["status"],
        "description": m["description"],
        "api_version": m["api_version"],
        "updated_at": iso(m["updated"]),
    }


def _encrypted(keyring: Keyring, endpoint_id: str, config: dict[str, Any]) -> str:
    return keyring.encrypt(json.dumps(config, sort_keys=True), endpoint_secrets.config_aad(endpoint_id))


async def create(tx: Tx, params: EventDestinationCreate, *, livemode: bool, now: float) -> dict[str, Any]:
    config = configs.check(params.type, dict(params.config))
    endpoint_id = new_id("we" if params.type == "webhook" else "ed")
    plain = generate_secret()
    keyring = tx.keyring
    row = {
        "id": endpoint_id,
        "livemode": livemode,
        "type": params.type,
        "url": endpoints.check_url(config["url"]) if params.type == "webhook" else "",
        "config": None if params.type == "webhook" else _encrypted(keyring, endpoint_id, config),
        "ordering": params.ordering,
        "enabled_events": endpoints.check_events(params.enabled_events),
        "status": "enabled",
        "description": params.description,
        "metadata": params.metadata or {},
        "api_version": API_VERSION,
        "created_via": "api",
        "secret": keyring.encrypt(plain, endpoint_secrets.secret_aad(endpoint_id)),
        "previous_secrets": [],
        "created": int(now),
        "updated": int(now),
    }
    await tx.conn.execute(e.insert(), row)
    await targets.bump(tx.conn)
    return {**render(row, keyring), "secret": plain}


async def update(
    tx: Tx, destination_id: str, params: EventDestinationUpdate, *, livemode: bool, now: float
) -> dict[str, Any]:
    row = await endpoints.fetch(tx.conn, destination_id, livemode, lock=True, kind=None)
    values = params.model_dump(exclude_unset=True)
    for required in ("enabled_events", "status", "ordering", "config"):
        if required in values and values[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    keyring = tx.keyring
    extra: dict[str, Any] = {}
    if "config" in values:
        merged = {**stored_config(row, keyring), **values.pop("config")}
        config = configs.check(row["type"], {k: v for k, v in merged.items() if v is not None})
        if row["type"] == "webhook":
            extra["url"] = endpoints.check_url(config["url"])
        elif config != stored_config(row, keyring):
            extra["config"] = _encrypted(keyring, destination_id, config)
    # Status, events, description and metadata: the webhook endpoint rules (re-enabling resumes).
    from paywire.schemas import WebhookEndpointUpdate

    common = {k: v for k, v in values.items() if k != "ordering"}
    if "url" in extra:
        common["url"] = extra.pop("url")
    await endpoints.update(tx, destination_id, WebhookEndpointUpdate(**common), livemode=livemode, now=now, kind=None)
    if "ordering" in values and values["ordering"] != row["ordering"]:
        extra["ordering"] = values["ordering"]
    if extra:
        await tx.conn.execute(e.update().where(e.c.seq == row["seq"]).values(**extra, updated=int(now)))
        await targets.bump(tx.conn)
    fresh = await fetch(tx.conn, destination_id, livemode)
    return render(fresh, keyring)


async def delete(tx: Tx, destination_id: str, *, livemode: bool, now: float) -> dict[str, Any]:
    await endpoints.delete(tx, destination_id, livemode=livemode, now=now, kind=None)
    return {"id": destination_id, "object": "event_destination", "deleted": True}


async def fetch(conn: AsyncConnection, destination_id: str, livemode: bool) -> sa.RowMapping:
    query = sa.select(e).where(e.c.id == destination_id, e.c.livemode == livemode)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no such event destination: {destination_id!r}", param="id")
    return row


def listing(livemode: bool, *, type: str | None = None) -> sa.Select[Any]:
    query = sa.select(e).where(e.c.livemode == livemode)
    if type:
        query = query.where(e.c.type == type)
    return query

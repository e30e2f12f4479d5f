"""Webhook endpoints: list with health, create, edit, enable/disable, delete, secrets, recovery,
test events, and the attempts page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from paywire.db.engine import Connection
from paywire.destinations import config as destination_config
from paywire.destinations import store as destination_store
from paywire.errors import InvalidRequest, PaywireError
from paywire.events import catalogue
from paywire.ops import operators
from paywire.pagination import Cursor
from paywire.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from paywire.secrets_at_rest import Keyring
from paywire.web.dashboard.common import (
    Reading,
    admin_form,
    audit_action,
    current,
    cursor_params,
    datetime_local,
    field,
    page,
    page_links,
    parse_utc,
    reading,
    redirect,
    services_of,
)
from paywire.webhooks import endpoints as engine
from paywire.webhooks import netpolicy, queries, rollups
from paywire.webhooks.ping import send_test_event

router = APIRouter()
ROTATE_CHOICES = (
    (0, "Now (the old secret stops at once)"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (7 * 86_400, "7 days"),
)


def target(row: Any, keyring: Keyring) -> str:
    """Where a destination sends: a webhook's URL, or a broker's masked URL and its address in
    it (exchange and routing key, subject, stream)."""
    if row["type"] == "webhook":
        return str(row["url"])
    config = destination_config.masked(destination_store.stored_config(row, keyring))
    where = [str(config[key]) for key in ("exchange", "routing_key", "subject", "stream") if config.get(key)]
    return " → ".join([str(config["url"]), *where])


async def health(conn: Connection, endpoint_id: str, now: float) -> rollups.Health:
    """Success rate and p50/p95 latency of the endpoint's attempts in the last 24 hours (by
    whole UTC hours, as the overview), from the attempt rollups."""
    return (await rollups.health(conn, [endpoint_id], now))[endpoint_id]


@router.get("/endpoints")
async def list_endpoints(
    request: Request, cursor: Cursor = Depends(cursor_params), signed: Reading = Depends(reading)
) -> Response:
    services = services_of(request)
    now = services.now()
    conn = signed.conn
    # Every destination, webhooks and brokers alike: they share the delivery machinery.
    result = await queries.endpoints_page(conn, signed.session.livemode, cursor)
    figures = await rollups.health(conn, [row.id for row in result.rows], now)
    keyring = services.keyring
    rows = [{**row._mapping, "health": figures[row.id], "target": target(row._mapping, keyring)} for row in result.rows]
    context = {"endpoints": rows, "page": page_links(request, result)}
    return page(request, signed.session, "endpoints.html", context, nav="endpoints")


def _events_from(form: FormData) -> list[str]:
    if form.get("all_events"):
        return ["*"]
    return [str(v) for v in form.getlist("enabled_events")]


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "url": field(form, "url"),
        "description": field(form, "description"),
        "enabled_events": _events_from(form),
    }


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _endpoint_form(
    request: Request, session: operators.Session, values: dict[str, Any], *, endpoint_id: str | None, error: str | None
) -> Response:
    context = {
        "values": values,
        "endpoint_id": endpoint_id,
        "types": list(catalogue.EVENT_TYPES.values()),
        "error": error,
    }
    return page(request, session, "endpoint_form.html", context, nav="endpoints", status_code=400 if error else 200)


@router.get("/endpoints/new")
async def new_endpoint(request: Request, session: operators.Session = Depends(current)) -> Response:
    session.require_admin()
    values = {"url": "", "description": "", "enabled_events": ["*"]}
    return _endpoint_form(request, session, values, endpoint_id=None, error=None)


@router.post("/endpoints/new")
async def create_endpoint(request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    values = _form_values(form)
    services = services_of(request)
    try:
        if not values["enabled_events"]:
            raise InvalidRequest("choose at least one event type, or all events", param="enabled_events")
        params = WebhookEndpointCreate(
            url=values["url"], enabled_events=values["enabled_events"], description=values["description"] or None
        )
        await netpolicy.check_endpoint_url(
            params.url, livemode=session.livemode, allow_private=services.settings.allow_private_networks
        )
        async with services.db.transaction() as tx:
            created = await engine.create(
                tx, params, livemode=session.livemode, now=services.now(), created_via="dashboard"
            )
            await audit_action(tx.conn, request, session, "endpoint_created", created["id"], {"url": params.url})
    except ValidationError as exc:
        return _endpoint_form(request, session, values, endpoint_id=None, error=_validation_message(exc))
    except PaywireError as exc:
        return _endpoint_form(request, session, values, endpoint_id=None, error=exc.message)
    return redirect(f"/endpoints/{created['id']}", "created")


async def _endpoint(request: Request, session: operators.Session, endpoint_id: str) -> Mapping[Any, Any]:
    async with services_of(request).db.read() as conn:
        return await queries.endpoint(conn, endpoint_id, session.livemode)


async def _detail(
    request: Request, session: operators.Session, endpoint_id: str, *, secret: str | None = None, secret_note: str = "",
    recovered: int | None = None,
) -> Response:  # fmt: skip
    services = services_of(request)
    now = services.now()
    async with services.db.read() as conn:
        row = await queries.endpoint(conn, endpoint_id, session.livemode)
        stats = await health(conn, endpoint_id, now)
        recent = await queries.recent_attempts(conn, endpoint_id)
        failed = await queries.failed_deliveries(conn, endpoint_id)
    context = {
        "endpoint": row,
        "target": target(row, services.keyring),
        "health": stats,
        "recent": recent,
        "failed_deliveries": failed,
        "secret": secret,
        "secret_note": secret_note,
        "recovered": recovered,
        "rotate_choices": ROTATE_CHOICES,
        "recover_default": datetime_local(now - 86_400),
        "previous_secrets": [s for s in row["previous_secrets"] if s["expires"] > now],
    }
    return page(request, session, "endpoint.html", context, nav="endpoints")


@router.get("/endpoints/{endpoint_id}")
async def show_endpoint(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    return await _detail(request, session, endpoint_id)


@router.get("/endpoints/{endpoint_id}/edit")
async def edit_endpoint_form(
    endpoint_id: str, request: Request, session: operators.Session = Depends(current)
) -> Response:
    session.require_admin()
    row = await _endpoint(request, session, endpoint_id)
    values = {"url": row["url"], "description": row["description"] or "", "enabled_events": list(row["enabled_events"])}
    return _endpoint_form(request, session, values, endpoint_id=endpoint_id, error=None)


@router.post("/endpoints/{endpoint_id}/edit")
async def edit_endpoint(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    values = _form_values(form)
    services = services_of(request)
    try:
        if not values["enabled_events"]:
            raise InvalidRequest("choose at least one event type, or all events", param="enabled_events")
        params = WebhookEndpointUpdate(
            url=values["url"], enabled_events=values["enabled_events"], description=values["description"] or None
        )
        await netpolicy.check_endpoint_url(
            values["url"], livemode=session.livemode, allow_private=services.settings.allow_private_networks
        )
        async with services.db.transaction() as tx:
            await engine.update(tx, endpoint_id, params, livemode=session.livemode, now=services.now())
            await audit_action(tx.conn, request, session, "endpoint_updated", endpoint_id, values)
    except ValidationError as exc:
        return _endpoint_form(request, session, values, endpoint_id=endpoint_id, error=_validation_message(exc))
    except PaywireError as exc:
        if exc.status == 404:
            raise
        return _endpoint_form(request, session, values, endpoint_id=endpoint_id, error=exc.message)
    return redirect(f"/endpoints/{endpoint_id}", "saved")


@router.post("/endpoints/{endpoint_id}/status")
async def set_status(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    status = "enabled" if field(form, "status") == "enabled" else "disabled"
    services = services_of(request)
    params = WebhookEndpointUpdate(status="enabled" if status == "enabled" else "disabled")
    async with services.db.transaction() as tx:
        await engine.update(tx, endpoint_id, params, livemode=session.livemode, now=services.now())
        await audit_action(tx.conn, request, session, f"endpoint_{status}", endpoint_id)
        tx.after_commit.append(services.db.signal.notify)
    return redirect(f"/endpoints/{endpoint_id}", status)


@router.get("/endpoints/{endpoint_id}/delete")
async def delete_confirm(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    session.require_admin()
    row = await _endpoint(request, session, endpoint_id)
    return page(request, session, "endpoint_delete.html", {"endpoint": row}, nav="endpoints")


@router.post("/endpoints/{endpoint_id}/delete")
async def delete_endpoint(
    endpoint_id: str, request: Request, session: operators.Session = Depends(current)
) -> Response:
    await admin_form(request, session)
    services = services_of(request)
    async with services.db.transaction() as tx:
        await engine.delete(tx, endpoint_id, livemode=session.livemode, now=services.now())
        await audit_action(tx.conn, request, session, "endpoint_deleted", endpoint_id)
    return redirect("/endpoints", "deleted")


@router.post("/endpoints/{endpoint_id}/reveal-secret")
async def reveal_secret(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    """Show the signing secret on this response only (never in a URL, never on a GET)."""
    await admin_form(request, session)
    services = services_of(request)
    async with services.db.transaction() as tx:
        secret = await engine.secret(tx.conn, services.keyring, endpoint_id, livemode=session.livemode)
        await audit_action(tx.conn, request, session, "secret_revealed", endpoint_id)
    return await _detail(request, session, endpoint_id, secret=secret, secret_note="The endpoint's signing secret.")


@router.post("/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    try:
        expires_in = int(field(form, "expires_in") or 0)
    except ValueError:
        raise InvalidRequest("expires_in must be a number of seconds", param="expires_in") from None
    if expires_in not in {seconds for seconds, _ in ROTATE_CHOICES}:
        raise InvalidRequest("choose one of the offered expiries", param="expires_in")
    services = services_of(request)
    async with services.db.transaction() as tx:
        result = await engine.rotate_secret(
            tx, endpoint_id, expires_in=expires_in, livemode=session.livemode, now=services.now()
        )
        await audit_action(tx.conn, request, session, "secret_rotated", endpoint_id, {"expires_in": expires_in})
    note = "The new signing secret." + (
        f" The previous one keeps signing for {dict(ROTATE_CHOICES)[expires_in]}." if expires_in else ""
    )
    return await _detail(request, session, endpoint_id, secret=result["secret"], secret_note=note)


@router.post("/endpoints/{endpoint_id}/recover")
async def recover(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    since = parse_utc(field(form, "since"), "since")
    services = services_of(request)
    async with services.db.transaction() as tx:
        requeued = await engine.recover_endpoint(
            tx, endpoint_id, livemode=session.livemode, since=since, now=services.now()
        )
        await audit_action(
            tx.conn, request, session, "deliveries_recovered", endpoint_id, {"since": since, "requeued": requeued}
        )
        tx.after_commit.append(services.db.signal.notify)
    return await _detail(request, session, endpoint_id, recovered=requeued)


@router.post("/endpoints/{endpoint_id}/test-event")
async def test_event(endpoint_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    await admin_form(request, session)
    services = services_of(request)
    async with services.db.transaction() as tx:
        event = await send_test_event(tx, endpoint_id, livemode=session.livemode, now=services.now())
        await audit_action(tx.conn, request, session, "test_event_sent", endpoint_id, {"event_id": event["id"]})
    return redirect(f"/events/{event['id']}", "test_sent")


@router.get("/attempts")
async def list_attempts(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    endpoint_id: Annotated[str, Query(max_length=40)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: operators.Session = Depends(current),
) -> Response:
    services = services_of(request)
    status = status if status in ("succeeded", "failed") else ""
    async with services.db.read() as conn:
        result = await queries.attempts_page(
            conn, session.livemode, cursor, endpoint_id=endpoint_id or None, status=status or None
        )
        endpoint_rows = await queries.endpoint_targets(conn, session.livemode)
    targets = {row.id: target(row._mapping, services.keyring) for row in endpoint_rows}
    context = {
        "attempts": [row._mapping for row in result.rows],
        "page": page_links(request, result),
        "status": status,
        "endpoint_id": endpoint_id,
        "endpoint_choices": targets,
        "urls": targets,
    }
    return page(request, session, "attempts.html", context, nav="attempts")

"""Commands that talk to a running Paywire: `events`, `endpoints`, `listen` (through the SDK)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from paywire.sdk import Paywire
from paywire.sdk.errors import APIConnectionError, PaywireAPIError

out = Console()
err = Console(stderr=True)

ServerUrl = Annotated[
    str | None, typer.Option("--url", envvar="PAYWIRE_URL", help="Paywire server (default http://127.0.0.1:8800).")
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="PAYWIRE_API_KEY", help="Secret key (sk_test_…).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
Page = Annotated[int, typer.Option(min=1, help="Page, from 1.")]
Size = Annotated[int, typer.Option(min=1, max=100, help="Items per page.")]


@contextmanager
def client(url: str | None, api_key: str | None) -> Iterator[Paywire]:
    """An SDK client; API errors become one red line and exit code 1, not a traceback."""
    try:
        with Paywire(api_key=api_key, base_url=url, max_retries=1) as payment:
            yield payment
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except APIConnectionError as exc:
        err.print(f"[red]cannot reach Paywire at {url or 'http://127.0.0.1:8800'}: {exc.message}[/red]")
        raise typer.Exit(1) from None
    except PaywireAPIError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def dump(value: Any) -> None:
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def when(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], footer: str) -> None:
    grid = Table(title=title, caption=footer)
    for column in columns:
        grid.add_column(column, no_wrap=column == "id", overflow="fold")
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


def show(result: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        dump(result)
    else:
        render(result)


# --- events ---------------------------------------------------------------------------------

events_app = typer.Typer(no_args_is_help=True, help="Browse events and resend them.")


@events_app.command("list")
def events_list(
    type: Annotated[str | None, typer.Option("--type", help="A type, or a prefix ending in *.")] = None,
    object_id: Annotated[str | None, typer.Option(help="Only events about this object.")] = None,
    page: Page = 1,
    size: Size = 20,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List events, newest first."""
    with client(url, api_key) as payment:
        result = payment.events.list(type=type, object_id=object_id, page=page, size=size)
    show(
        result,
        as_json,
        lambda r: table(
            "Events",
            ["id", "type", "object", "created", "pending"],
            [[e.id, e.type, e.object_id, when(e.created), str(e.pending_webhooks)] for e in r.list],
            f"page {r.paging.page} · {len(r.list)} of {r.count}",
        ),
    )


@events_app.command("retrieve")
def events_retrieve(event_id: str, url: ServerUrl = None, api_key: ApiKey = None) -> None:
    """Print one event as JSON."""
    with client(url, api_key) as payment:
        dump(payment.events.retrieve(event_id))


@events_app.command("resend")
def events_resend(
    event_id: str,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only to this webhook endpoint (we_…).")] = None,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Queue a new delivery of an event now."""
    with client(url, api_key) as payment:
        result = payment.events.resend(event_id, webhook_endpoint_id=endpoint)
    show(result, as_json, lambda r: out.print(f"queued {event_id}: {r.model_dump(mode='json')}"))


# --- endpoints ------------------------------------------------------------------------------

endpoints_app = typer.Typer(no_args_is_help=True, help="Manage webhook endpoints.")


def _endpoint_rows(endpoints: Sequence[Any]) -> list[list[str]]:
    return [[e.id, e.url, e.status, ", ".join(e.enabled_events), e.description or ""] for e in endpoints]


def _one_endpoint(endpoint: Any) -> None:
    table("Webhook endpoint", ["id", "url", "status", "events", "description"], _endpoint_rows([endpoint]), "")
    secret = getattr(endpoint, "secret", None)
    if secret:
        out.print(f"signing secret: [green]{secret}[/green] (shown once; `GET …/secret` shows it again)")


@endpoints_app.command("list")
def endpoints_list(
    page: Page = 1, size: Size = 20, as_json: AsJson = False, url: ServerUrl = None, api_key: ApiKey = None
) -> None:
    """List webhook endpoints."""
    with client(url, api_key) as payment:
        result = payment.webhook_endpoints.list(page=page, size=size)
    show(
        result,
        as_json,
        lambda r: table(
            "Webhook endpoints",
            ["id", "url", "status", "events", "description"],
            _endpoint_rows(r.list),
            f"page {r.paging.page} · {len(r.list)} of {r.count}",
        ),
    )


def _events_option(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


Events = Annotated[str | None, typer.Option("--events", help="Comma-separated event types, or *.")]


@endpoints_app.command("create")
def endpoints_create(
    endpoint_url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST events.")],
    events: Events = "*",
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Register a webhook endpoint."""
    with client(url, api_key) as payment:
        created = payment.webhook_endpoints.create(
            url=endpoint_url, enabled_events=_events_option(events) or ["*"], description=description
        )
    show(created, as_json, _one_endpoint)


@endpoints_app.command("update")
def endpoints_update(
    endpoint_id: str,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help="New URL.")] = None,
    events: Events = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Turn deliveries on or off.")] = None,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Change a webhook endpoint."""
    fields: dict[str, Any] = {}
    if endpoint_url is not None:
        fields["url"] = endpoint_url
    if events is not None:
        fields["enabled_events"] = _events_option(events)
    if description is not None:
        fields["description"] = description
    if enable is not None:
        fields["status"] = "enabled" if enable else "disabled"
    with client(url, api_key) as payment:
        updated = payment.webhook_endpoints.update(endpoint_id, **fields)
    show(updated, as_json, _one_endpoint)


@endpoints_app.command("delete")
def endpoints_delete(endpoint_id: str, as_json: AsJson = False, url: ServerUrl = None, api_key: ApiKey = None) -> None:
    """Delete a webhook endpoint (its pending deliveries are canceled)."""
    with client(url, api_key) as payment:
        deleted = payment.webhook_endpoints.delete(endpoint_id)
    show(deleted, as_json, lambda _d: out.print(f"deleted {endpoint_id}"))


# --- listen ---------------------------------------------------------------------------------


def listen(
    forward_to: Annotated[str, typer.Option("--forward-to", help="Local URL to POST each event to.")],
    events: Events = None,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Forward the server's events, as they happen, to a local URL, signed."""
    from paywire.cli import listen as listening

    key = api_key
    if not key:
        err.print("[red]an API key is needed: --api-key or PAYWIRE_API_KEY[/red]")
        raise typer.Exit(2)
    listening.run(url or "http://127.0.0.1:8800", key, forward_to, _events_option(events), None)

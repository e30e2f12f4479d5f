"""`paywire destinations …`: event destinations of every type, through the SDK (like `endpoints`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from paywire.cli.remote import ApiKey, AsJson, Page, ServerUrl, Size, client, out, show, table

destinations_app = typer.Typer(no_args_is_help=True, help="Manage event destinations (webhook, rabbitmq, nats, redis).")

COLUMNS = ["id", "type", "status", "ordering", "events", "config"]
Config = Annotated[
    list[str] | None,
    typer.Option("--config", "-c", help="key=value, repeatable (url, exchange, routing_key, subject, stream, maxlen)."),
]
Events = Annotated[str | None, typer.Option("--events", help="Comma-separated event types, or *.")]
Ordering = Annotated[str | None, typer.Option("--ordering", help="none or per_object.")]


def _rows(destinations: Sequence[Any]) -> list[list[str]]:
    return [
        [
            d.id,
            d.type,
            d.status,
            d.ordering,
            ", ".join(d.enabled_events),
            " ".join(f"{k}={v}" for k, v in d.config.items()),  # masked by the server
        ]
        for d in destinations
    ]


def _one(destination: Any) -> None:
    table("Event destination", COLUMNS, _rows([destination]), "")
    secret = getattr(destination, "secret", None)
    if secret:
        out.print(f"signing secret: [green]{secret}[/green] (shown once; `GET …/secret` shows it again)")


def _config(pairs: list[str] | None) -> dict[str, str | int | None]:
    config: dict[str, str | int | None] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--config")
        config[key.strip()] = int(value) if key.strip() == "maxlen" and value.strip().isdigit() else value
    return config


def _events(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@destinations_app.command("list")
def destinations_list(
    type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    page: Page = 1,
    size: Size = 20,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List event destinations."""
    with client(url, api_key) as payment:
        result = payment.event_destinations.list(type=type, page=page, size=size)
    show(
        result,
        as_json,
        lambda r: table(
            "Event destinations", COLUMNS, _rows(r.list), f"page {r.paging.page} · {len(r.list)} of {r.count}"
        ),
    )


@destinations_app.command("create")
def destinations_create(
    type: Annotated[str, typer.Argument(metavar="TYPE", help="webhook, rabbitmq, nats or redis.")],
    config: Config = None,
    events: Events = "*",
    ordering: Ordering = None,
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Create an event destination, e.g. `paywire destinations create redis -c url=redis://127.0.0.1:6379`."""
    with client(url, api_key) as payment:
        created = payment.event_destinations.create(
            type=type,
            config=_config(config),
            enabled_events=_events(events) or ["*"],
            ordering=ordering,
            description=description,
        )
    show(created, as_json, _one)


@destinations_app.command("update")
def destinations_update(
    destination_id: str,
    config: Config = None,
    events: Events = None,
    ordering: Ordering = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Turn deliveries on or off.")] = None,
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Change an event destination (config keys given replace the stored ones)."""
    fields: dict[str, Any] = {}
    if config:
        fields["config"] = _config(config)
    if events is not None:
        fields["enabled_events"] = _events(events)
    if ordering is not None:
        fields["ordering"] = ordering
    if description is not None:
        fields["description"] = description
    if enable is not None:
        fields["status"] = "enabled" if enable else "disabled"
    with client(url, api_key) as payment:
        updated = payment.event_destinations.update(destination_id, **fields)
    show(updated, as_json, _one)


@destinations_app.command("delete")
def destinations_delete(
    destination_id: str, as_json: AsJson = False, url: ServerUrl = None, api_key: ApiKey = None
) -> None:
    """Delete an event destination (its pending deliveries are canceled)."""
    with client(url, api_key) as payment:
        deleted = payment.event_destinations.delete(destination_id)
    show(deleted, as_json, lambda _d: out.print(f"deleted {destination_id}"))


@destinations_app.command("recover")
def destinations_recover(
    destination_id: str,
    since: Annotated[int, typer.Option(help="Unix seconds: re-queue deliveries that failed for good since then.")],
    as_json: AsJson = False,
    url: ServerUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Re-queue the deliveries to a destination that failed for good since `--since`."""
    with client(url, api_key) as payment:
        result = payment.event_destinations.recover(destination_id, since=since)
    show(result, as_json, lambda r: out.print(f"re-queued {r.requeued} deliveries to {destination_id}"))

"""`paywire serve | worker | migrate | prune | export | backup | config | keys | operators | encryption`, and the
remote commands (`events`, `endpoints`, `listen`, `trigger`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from paywire.cli import destinations, remote, trigger

if TYPE_CHECKING:
    from paywire.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Paywire: self-hosted payment events.", add_completion=False)
keys_app = typer.Typer(no_args_is_help=True, help="Manage secret API keys.")
app.add_typer(keys_app, name="keys")
encryption_app = typer.Typer(no_args_is_help=True, help="The key of the secrets stored encrypted in the database.")
app.add_typer(encryption_app, name="encryption")
operators_app = typer.Typer(no_args_is_help=True, help="Manage dashboard operators (people who sign in at /dashboard).")
app.add_typer(operators_app, name="operators")
app.add_typer(remote.events_app, name="events")
app.add_typer(remote.endpoints_app, name="endpoints")
app.add_typer(destinations.destinations_app, name="destinations")
app.command()(remote.listen)
app.command()(trigger.trigger)

# Flags are overrides of the settings (paywire.settings): None means "not given", so the TOML
# file and the PAYWIRE_* variables, read by the settings alone, decide.
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text, or json: one JSON object per line (default: PAYWIRE_LOG_FORMAT, else text).",
        show_default=False,
    ),
]

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path or postgresql://… (default: PAYWIRE_DATABASE_URL, else sqlite:///.paywire/paywire.db)",
        show_default=False,
    ),
]

ConfigFile = Annotated[
    str | None, typer.Option("--config", envvar="PAYWIRE_CONFIG", help="A TOML settings file.", show_default=False)
]


def _settings(config_file: str | None = None, **flags: Any) -> Settings:
    """The effective settings with these flags on top, or one line naming the bad one and exit 2."""
    from paywire.settings import SettingsError, load

    try:
        return load(config_file, **flags)
    except SettingsError as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(2) from None


def _database_url(flag: str | None) -> str:
    return _settings(database_url=flag).database_url


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8800,
    database_url: DatabaseUrl = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Run the API alone (no delivery worker, no scheduler).")
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Base URL payers reach this server at (default: PAYWIRE_PUBLIC_URL, else http://HOST:PORT).",
            show_default=False,
        ),
    ] = None,
    log_format: LogFormatOption = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a client has to send a request's line and headers (default 10).", show_default=False
        ),
    ] = None,
    keep_alive_timeout: Annotated[
        int | None,
        typer.Option(help="Seconds an idle keep-alive connection is kept open (default 5).", show_default=False),
    ] = None,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest request line and headers, in bytes; larger: 400 (default 16384).", show_default=False
        ),
    ] = None,
    limit_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Connections at once before new requests get 503; 0: no limit (default 2048).", show_default=False
        ),
    ] = None,
    config_file: ConfigFile = None,
) -> None:
    """Run the HTTP API, the delivery worker and the scheduler in one process."""
    from paywire.cli import server

    settings = _settings(
        config_file,
        database_url=database_url,
        public_url=public_url,
        log_format=log_format,
        http_header_timeout=header_timeout,
        http_keep_alive_timeout=keep_alive_timeout,
        http_max_header_bytes=max_header_bytes,
        http_limit_concurrency=limit_concurrency,
    )
    server.serve(host, port, settings, run_worker=not no_worker)


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Webhook requests in flight, all endpoints together.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65_535, help="Serve /metrics, /healthz and /readyz on this port.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics port listens on.")] = "127.0.0.1",
    log_format: LogFormatOption = None,
    config_file: ConfigFile = None,
) -> None:
    """Run the webhook dispatcher and the billing scheduler, without the API (beside `serve --no-worker`)."""
    from paywire.cli import server

    settings = _settings(config_file, database_url=database_url, log_format=log_format, webhook_concurrency=concurrency)
    server.worker(settings, metrics=(metrics_host, metrics_port))


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""
    from paywire.cli import server

    server.migrate(_database_url(database_url))


@app.command()
def backup(
    path: Annotated[str, typer.Argument(help="The new file to write the copy to.", show_default=False)],
    database_url: DatabaseUrl = None,
) -> None:
    """Copy a SQLite database consistently while Paywire runs (PostgreSQL: use pg_dump)."""
    from pathlib import Path

    from rich.progress import Progress

    from paywire.ops.backup import BackupError, backup_sqlite

    with Progress(transient=True) as bar:
        task = bar.add_task("copying", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            pages = backup_sqlite(_database_url(database_url), Path(path), progress)
        except BackupError as exc:
            typer.echo(f"paywire backup: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"backed up {pages} pages to {path}", err=True)


@app.command()
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be removed.")] = False,
    database_url: DatabaseUrl = None,
    config_file: ConfigFile = None,
) -> None:
    """Remove events, deliveries, attempts and idempotency keys past retention now (the worker does every 10 min)."""
    from paywire.cli import data
    from paywire.settings import SettingsError, load

    try:
        settings = load(config_file, database_url=database_url)
    except SettingsError as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(2) from None
    data.prune(settings, dry_run=dry_run)


@app.command()
def export(
    since: Annotated[str, typer.Option(help="First moment: unix seconds, 2026-11-01 or an ISO datetime (UTC).")],
    until: Annotated[str, typer.Option(help="End (excluded), like --since.")],
    type: Annotated[
        str | None, typer.Option("--type", help="Only this event type, or a prefix ending in *.", show_default=False)
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default: stdout).", show_default=False)
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the events created in [--since, --until) as JSON lines, the way the API renders them."""
    from pathlib import Path

    from paywire.cli import data

    try:
        data.export(_database_url(database_url), since, until, type, Path(output) if output else None)
    except ValueError as exc:
        typer.echo(f"paywire export: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("config")
def show_config(
    config_file: ConfigFile = None,
) -> None:
    """Print the effective settings (defaults, config file, PAYWIRE_* variables), secrets masked."""
    from paywire.settings import SettingsError, describe, load

    try:
        settings = load(config_file)
    except SettingsError as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, value in describe(settings):
        typer.echo(f"{name} = {value}")


@keys_app.command("create")
def create_key(
    live: Annotated[bool, typer.Option("--live", help="A live-mode key (sk_live_…).")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print one new secret key, alone on stdout."""
    from paywire.cli import server

    print(server.create_key(_database_url(database_url), live=live))


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="The secret key to revoke (sk_test_… or sk_live_…).", show_default=False)],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a secret key: every request with it is a 401 from now on."""
    from paywire.cli import server

    if not server.revoke_key(_database_url(database_url), key):
        server.err.print("no such key")
        raise typer.Exit(1)
    server.err.print("key revoked")


@encryption_app.command("generate-key")
def generate_encryption_key() -> None:
    """Print a new encryption key (base64 of 32 random bytes), alone on stdout."""
    from paywire.secrets_at_rest import generate_key

    print(generate_key())


@encryption_app.command("rotate")
def rotate_encryption(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            envvar="PAYWIRE_ENCRYPTION_NEW_KEY",
            help="The key to re-encrypt under (base64 of 32 bytes). Default: the configured "
            "PAYWIRE_ENCRYPTION_KEY; with a key file, a new key written to it.",
            show_default=False,
        ),
    ] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate the new key and print it once (on stdout).")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Endpoints per transaction.")] = 200,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-encrypt every stored secret under a new key, in small transactions, while Paywire runs.

    Read docs/security.md first: every running process must already accept the new key."""
    from paywire.cli import server

    server.rotate_encryption(_database_url(database_url), new_key, generate=generate, batch=batch)


def _read_password() -> str:
    """Asked twice (hidden) on a terminal; otherwise one line from stdin (for scripts)."""
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@operators_app.command("create")
def create_operator(
    email: Annotated[str, typer.Argument(help="The operator's email: what they sign in with.", show_default=False)],
    role: Annotated[str, typer.Option(help="admin (every action) or viewer (read-only).")] = "admin",
    database_url: DatabaseUrl = None,
) -> None:
    """Create a dashboard operator; the password is read from the terminal (twice) or stdin."""
    from paywire.cli import server

    if role not in ("admin", "viewer"):
        server.err.print("role must be admin or viewer")
        raise typer.Exit(2)
    problem = server.create_operator(_database_url(database_url), email, _read_password(), role)
    if problem:
        server.err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1)
    server.err.print(f"operator {email.strip().lower()} created ({role}); sign in at /dashboard")


@operators_app.command("list")
def list_operators(database_url: DatabaseUrl = None) -> None:
    """Every operator: email, role, created (UTC)."""
    from paywire.cli import server

    for line in server.list_operators(_database_url(database_url)):
        print(line)


@operators_app.command("delete")
def delete_operator(
    email: Annotated[str, typer.Argument(help="The operator to delete.", show_default=False)],
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an operator; their sessions end at once."""
    from paywire.cli import server

    if not server.delete_operator(_database_url(database_url), email):
        server.err.print("no such operator")
        raise typer.Exit(1)
    server.err.print("operator deleted")


if __name__ == "__main__":  # pragma: no cover
    app()

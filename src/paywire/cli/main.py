"""`paywire serve | worker | migrate | keys create | keys revoke`, and the remote commands (`events`, `endpoints`,
`listen`, `trigger`)."""

from __future__ import annotations

from typing import Annotated

import typer

from paywire.cli import remote, trigger
from paywire.config import default_database_url

app = typer.Typer(no_args_is_help=True, help="Paywire: self-hosted payment events.", add_completion=False)
keys_app = typer.Typer(no_args_is_help=True, help="Manage secret API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(remote.events_app, name="events")
app.add_typer(remote.endpoints_app, name="endpoints")
app.command()(remote.listen)
app.command()(trigger.trigger)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PAYWIRE_DATABASE_URL",
        help="sqlite:///path or postgresql://… (default: sqlite:///.paywire/paywire.db)",
        show_default=False,
    ),
]


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
            envvar="PAYWIRE_PUBLIC_URL",
            help="Base URL payers reach this server at (default: http://HOST:PORT).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP API, the delivery worker and the scheduler in one process."""
    from paywire.cli import server

    server.serve(
        host, port, database_url or default_database_url(), run_worker=not no_worker, public_url=public_url
    )


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Webhook requests in flight, all endpoints together.")
    ] = None,
) -> None:
    """Run the webhook dispatcher and the billing scheduler, without the API (beside `serve --no-worker`)."""
    from paywire.cli import server

    server.worker(database_url or default_database_url(), concurrency)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""
    from paywire.cli import server

    server.migrate(database_url or default_database_url())


@keys_app.command("create")
def create_key(
    live: Annotated[bool, typer.Option("--live", help="A live-mode key (sk_live_…).")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print one new secret key, alone on stdout."""
    from paywire.cli import server

    print(server.create_key(database_url or default_database_url(), live=live))


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="The secret key to revoke (sk_test_… or sk_live_…).", show_default=False)],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a secret key: every request with it is a 401 from now on."""
    from paywire.cli import server

    if not server.revoke_key(database_url or default_database_url(), key):
        server.err.print("no such key")
        raise typer.Exit(1)
    server.err.print("key revoked")


if __name__ == "__main__":  # pragma: no cover
    app()

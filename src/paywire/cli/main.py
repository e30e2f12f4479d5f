"""`paywire serve | worker | migrate | keys create | keys revoke | operators create | list | delete`, and the
remote commands (`events`, `endpoints`, `listen`, `trigger`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from paywire.cli import remote, trigger
from paywire.config import default_database_url

app = typer.Typer(no_args_is_help=True, help="Paywire: self-hosted payment events.", add_completion=False)
keys_app = typer.Typer(no_args_is_help=True, help="Manage secret API keys.")
app.add_typer(keys_app, name="keys")
operators_app = typer.Typer(no_args_is_help=True, help="Manage dashboard operators (people who sign in at /dashboard).")
app.add_typer(operators_app, name="operators")
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
) -> None:
    """Run the HTTP API, the delivery worker and the scheduler in one process."""
    from paywire.cli import server

    server.serve(host, port, database_url or default_database_url(), run_worker=not no_worker)


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
    problem = server.create_operator(database_url or default_database_url(), email, _read_password(), role)
    if problem:
        server.err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1)
    server.err.print(f"operator {email.strip().lower()} created ({role}); sign in at /dashboard")


@operators_app.command("list")
def list_operators(database_url: DatabaseUrl = None) -> None:
    """Every operator: email, role, created (UTC)."""
    from paywire.cli import server

    for line in server.list_operators(database_url or default_database_url()):
        print(line)


@operators_app.command("delete")
def delete_operator(
    email: Annotated[str, typer.Argument(help="The operator to delete.", show_default=False)],
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an operator; their sessions end at once."""
    from paywire.cli import server

    if not server.delete_operator(database_url or default_database_url(), email):
        server.err.print("no such operator")
        raise typer.Exit(1)
    server.err.print("operator deleted")


if __name__ == "__main__":  # pragma: no cover
    app()

"""`paywire serve | worker | migrate | keys create`."""

from __future__ import annotations

import asyncio
import logging
import time
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from paywire import keys
from paywire.app import PaywireApp
from paywire.cli import remote
from paywire.db import migrate as migrations
from paywire.db.engine import Database, default_database_url

app = typer.Typer(no_args_is_help=True, help="Paywire: self-hosted payment events.", add_completion=False)
keys_app = typer.Typer(no_args_is_help=True, help="Manage secret API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(remote.events_app, name="events")
app.add_typer(remote.endpoints_app, name="endpoints")
app.command()(remote.listen)
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PAYWIRE_DATABASE_URL",
        help="sqlite:///path or postgresql://… (default: sqlite:///.paywire/paywire.db)",
        show_default=False,
    ),
]


async def _first_key(paywire: PaywireApp) -> str | None:
    """On an empty database, a test key to print once (the only time it is shown)."""
    async with paywire.db.transaction() as tx:
        if await keys.has_keys(tx.conn):
            return None
        return await keys.create_key(tx.conn, livemode=False, now=time.time())


class DrainingServer(uvicorn.Server):
    """Ends open event streams as soon as shutdown starts, instead of waiting them out."""

    def __init__(self, config: uvicorn.Config, paywire: PaywireApp) -> None:
        super().__init__(config)
        self.paywire = paywire

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.paywire.drain()
        super().handle_exit(sig, frame)


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paywire = PaywireApp(database_url or default_database_url(), run_worker=not no_worker)

    async def main() -> None:
        await migrations.upgrade(paywire.db)
        key = await _first_key(paywire)
        if key:
            err.print(f"[bold]Created a test secret key[/bold] (shown only now): [green]{key}[/green]")
        config = uvicorn.Config(
            paywire.api, host=host, port=port, log_level="info", timeout_graceful_shutdown=3, lifespan="on"
        )
        await DrainingServer(config, paywire).serve()

    asyncio.run(main())


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=10_000, help="Webhook requests in flight, all endpoints together.")
    ] = 200,
) -> None:
    """Run the webhook delivery worker alone (scale it apart from `serve --no-worker`)."""
    import signal

    from paywire.webhooks.dispatcher import DeliveryConfig, Dispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        db = Database(database_url or default_database_url())
        await migrations.upgrade(db)
        await db.start_listening()
        dispatcher = Dispatcher(db, DeliveryConfig.from_env(concurrency=concurrency))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await dispatcher.start()
        err.print(f"paywire worker {dispatcher.owner} delivering webhooks (concurrency {concurrency})")
        try:
            await stop.wait()
        finally:
            await dispatcher.stop()
            await db.dispose()

    asyncio.run(main())


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""

    async def main() -> None:
        db = Database(database_url or default_database_url())
        try:
            await migrations.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(main())
    err.print("schema is up to date")


@keys_app.command("create")
def create_key(
    live: Annotated[bool, typer.Option("--live", help="A live-mode key (sk_live_…).")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print one new secret key, alone on stdout."""

    async def main() -> str:
        db = Database(database_url or default_database_url())
        try:
            await migrations.upgrade(db)
            async with db.transaction() as tx:
                return await keys.create_key(tx.conn, livemode=live, now=time.time())
        finally:
            await db.dispose()

    print(asyncio.run(main()))


if __name__ == "__main__":  # pragma: no cover
    app()

"""The commands that own a database: `serve`, `worker`, `migrate`, `keys create`, `keys revoke`, `operators …`.

Heavy imports (SQLAlchemy, FastAPI, uvicorn) happen here, only when one of these runs, so the
remote commands (`events`, `listen`, `trigger`…) start quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType

import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console

from paywire import keys, secrets_store
from paywire.app import PaywireApp
from paywire.cli.http import HttpLimits, protocol_class
from paywire.db import migrate as migrations
from paywire.db.engine import Database
from paywire.ops import logs
from paywire.ops import routes as ops_routes
from paywire.ops.logs import LogFormat
from paywire.secrets_at_rest import (
    Keyring,
    SecretsError,
    generate_key,
    key_file_for,
    keyring_for,
    parse_key,
    read_key_file,
    write_key_file,
)
from paywire.services import Services
from paywire.settings import Settings, SettingsError, load

err = Console(stderr=True)


def _logging(log_format: LogFormat) -> None:
    logs.configure(log_format, logging.INFO)


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        settings.http_header_timeout,
        settings.http_keep_alive_timeout,
        settings.http_max_header_bytes,
        settings.http_limit_concurrency or None,  # 0: no limit
    )


def _paywire(database_url: str, *, settings: Settings | None = None, **kwargs: object) -> PaywireApp:
    """The application, or one line and exit 2 for a missing or bad encryption key."""
    try:
        settings = settings or load(database_url=database_url)
        return PaywireApp(database_url, settings=settings, **kwargs)  # type: ignore[arg-type]
    except (SecretsError, SettingsError) as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(2) from None


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


def _settle_heap() -> None:
    """Take what start-up loaded (modules, tables, compiled SQL) out of the garbage collector's
    sight: each full collection otherwise rescans all of it (measured: 38 ms pauses mid-delivery)."""
    gc.collect()
    gc.freeze()


def listen_url(host: str, port: int) -> str:
    """The address `serve` listens on, as a URL (a wildcard address becomes 127.0.0.1)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve(host: str, port: int, settings: Settings, *, run_worker: bool) -> None:
    limits = http_limits(settings)
    _logging(settings.log_format)
    if settings.public_url is None:  # payers reach the pages where serve listens
        settings.public_url = listen_url(host, port)
    paywire = _paywire(settings.database_url, settings=settings, run_worker=run_worker)

    async def main() -> None:
        await migrations.upgrade(paywire.db)
        try:
            await secrets_store.check_keys(paywire.db, paywire.keyring)
        except SecretsError as exc:
            typer.echo(f"paywire: {exc}", err=True)
            raise typer.Exit(2) from None
        key = await _first_key(paywire)
        if key:
            err.print(f"[bold]Created a test secret key[/bold] (shown only now): [green]{key}[/green]")
        err.print(f"payment providers: {paywire.providers.describe()}")
        # h11 with a request-head deadline (uvicorn has none; see paywire.cli.http), whatever
        # other HTTP implementation is installed.
        config = uvicorn.Config(
            paywire.api,
            host=host,
            port=port,
            log_level="info",
            log_config=None,  # our handlers (text or JSON), not uvicorn's
            timeout_graceful_shutdown=3,
            lifespan="on",
            http=protocol_class(limits),
            timeout_keep_alive=limits.keep_alive_timeout,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            limit_concurrency=limits.limit_concurrency,
        )
        _settle_heap()
        await DrainingServer(config, paywire).serve()

    asyncio.run(main())


class _QuietServer(uvicorn.Server):
    """A server inside a process whose own signal handlers stop it (they stay in place)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def worker(settings: Settings, *, metrics: tuple[str, int | None] = ("127.0.0.1", None)) -> None:
    """The background half of `serve`: the webhook dispatcher and the billing scheduler; with a
    metrics port, also `/metrics`, `/healthz` and `/readyz` there."""
    _logging(settings.log_format)

    async def main() -> None:
        paywire = _paywire(settings.database_url, settings=settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await paywire.start()
        except SecretsError as exc:
            await paywire.db.dispose()
            typer.echo(f"paywire: {exc}", err=True)
            raise typer.Exit(2) from None
        async with paywire.running():
            ops = None
            host, port = metrics
            if port is not None:
                config = uvicorn.Config(
                    ops_app(paywire.services), host=host, port=port, log_level="warning", log_config=None
                )
                ops = _QuietServer(config)
                serving = asyncio.create_task(ops.serve())
            _settle_heap()
            err.print("paywire worker: delivering webhooks and running billing jobs (Ctrl-C to stop)")
            await stop.wait()
            if ops is not None:
                ops.should_exit = True
                await serving

    asyncio.run(main())


def ops_app(services: Services) -> FastAPI:
    """The worker's own small server: only the operations routes."""
    app = FastAPI(title="Paywire worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(ops_routes.router)
    return app


def migrate(database_url: str) -> None:
    async def main() -> None:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(main())
    err.print("schema is up to date")


def create_key(database_url: str, *, live: bool) -> str:
    async def main() -> str:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
            async with db.transaction() as tx:
                return await keys.create_key(tx.conn, livemode=live, now=time.time())
        finally:
            await db.dispose()

    return asyncio.run(main())


def revoke_key(database_url: str, key: str) -> bool:
    """Revoke `key`; False if no such key is stored."""

    async def main() -> bool:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
            async with db.transaction() as tx:
                return await keys.revoke_key(tx.conn, key.strip(), now=time.time())
        finally:
            await db.dispose()

    return asyncio.run(main())


def rotate_encryption(database_url: str, new_key: str | None, *, generate: bool, batch: int) -> None:
    """`paywire encryption rotate`: every stored secret re-encrypted under the new key.

    The new key is `new_key`, else a generated one (`generate`, or with a key file), else the
    configured PAYWIRE_ENCRYPTION_KEY (finishing a rotation whose new key is already deployed).
    Every key configured (current and old) or in the key file still decrypts. With a key file,
    the new key is written to it first (older ones kept after it), where running processes pick
    it up as soon as they meet a value under it.
    """
    try:
        settings = Settings(database_url=database_url)
        current, old = settings.encryption_keys()
        keyring_for(database_url, current, old, create=False)  # the keys there are can be read
        path = key_file_for(database_url) if current is None else None
        if new_key is None and (generate or path is not None):
            new_key = generate_key()
            if path is None:
                print(new_key)  # shown once: the operator stores it as PAYWIRE_ENCRYPTION_KEY
        new = parse_key(new_key, "--new-key") if new_key else None
    except SecretsError as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(2) from None
    known = ([current] if current else []) + [k for k in (old or "").split(",") if k.strip()]
    if path is not None:
        known = read_key_file(path) + known
    older = [parse_key(k) for k in known]
    target = Keyring(new, older) if new else Keyring(older[0], older[1:])
    if path is not None and new_key is not None:
        write_key_file(path, [new_key] + [k for k in read_key_file(path) if k != new_key])
        typer.echo(f"new key written first in {path} (older keys kept after it)", err=True)

    async def main() -> tuple[secrets_store.Rewritten, int]:
        db = Database(database_url, keyring=target)
        try:
            await migrations.upgrade(db)
            done = await secrets_store.reencrypt(db, target, batch=batch)
            return done, await secrets_store.count_remaining(db, target)
        finally:
            await db.dispose()

    try:
        done, remaining = asyncio.run(main())
    except SecretsError as exc:
        typer.echo(f"paywire: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"re-encrypted {done.endpoints} endpoint(s) and {done.minter_keys} minter key(s) under key "
        f"{target.current_id}; {remaining} value(s) not under it",
        err=True,
    )
    if remaining:  # written meanwhile by a process still encrypting under the old key
        typer.echo("run it again once every process uses the new key", err=True)
        raise typer.Exit(1)


def create_operator(database_url: str, email: str, password: str, role: str) -> str | None:
    """Create a dashboard operator; returns what is wrong instead, if anything."""
    from paywire.errors import PaywireError
    from paywire.ops import operators

    async def main() -> str | None:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
            async with db.transaction() as tx:
                await operators.create_operator(tx, email, password, role=role, now=time.time())
        except PaywireError as exc:
            return exc.message
        finally:
            await db.dispose()
        return None

    return asyncio.run(main())


def list_operators(database_url: str) -> list[str]:
    from datetime import UTC, datetime

    from paywire.ops import operators

    async def main() -> list[str]:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
            async with db.read() as conn:
                rows = await operators.list_operators(conn)
        finally:
            await db.dispose()
        return [
            f"{r['email']}\t{r['role']}\t{datetime.fromtimestamp(r['created'], UTC):%Y-%m-%d %H:%M} UTC" for r in rows
        ]

    return asyncio.run(main())


def delete_operator(database_url: str, email: str) -> bool:
    from paywire.errors import NotFound
    from paywire.ops import operators

    async def main() -> bool:
        db = Database(database_url)
        try:
            await migrations.upgrade(db)
            async with db.transaction() as tx:
                await operators.delete_operator(tx, email)
        except NotFound:
            return False
        finally:
            await db.dispose()
        return True

    return asyncio.run(main())

"""`paywire listen --forward-to URL`: the running server's events, signed and forwarded locally.

Like `stripe listen`: the stream starts from now; each event is POSTed to the local URL with
Standard Webhooks headers, signed with a secret kept in the user's config directory, so it stays
the same across restarts (per server and mode) and the local receiver's configuration holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import httpx
from rich.console import Console

from paywire import __version__
from paywire.events.remote import RemoteSource
from paywire.webhooks.signing import generate_secret, signature_headers


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paywire"


def listen_secret(server_url: str, api_key: str) -> str:
    """The signing secret for this server and mode, created on first use and then reused."""
    path = config_dir() / "listen-secrets.json"
    scope = f"{server_url.rstrip('/')}|{'live' if api_key.startswith('sk_live_') else 'test'}"
    try:
        secrets: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        secrets = {}
    if scope not in secrets:
        secrets[scope] = generate_secret()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(secrets, indent=2))
        path.chmod(0o600)
    return secrets[scope]


async def forward_events(
    server_url: str,
    api_key: str,
    forward_to: str,
    *,
    types: list[str] | None,
    console: Console,
    max_events: int | None = None,
) -> None:
    """Stream events from now and POST each to `forward_to`, printing one line per event."""
    secret = listen_secret(server_url, api_key)
    source = RemoteSource(server_url, api_key=api_key, types=types)
    console.print(
        f"[bold]Ready![/bold] Forwarding to [cyan]{forward_to}[/cyan]. "
        f"Your webhook signing secret is [green]{secret}[/green] (^C to quit)"
    )
    forwarded = 0
    try:
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
            async for _position, event in source.events(await source.head()):
                body = json.dumps(event.to_dict(), separators=(",", ":")).encode()
                headers = {
                    "content-type": "application/json",
                    "user-agent": f"Paywire/{__version__} (listen)",
                    **signature_headers([secret], event.id, int(time.time()), body),
                }
                started = time.monotonic()
                try:
                    response = await client.post(forward_to, content=body, headers=headers)
                    status = f"[{'green' if response.is_success else 'red'}]{response.status_code}[/]"
                except httpx.HTTPError as exc:
                    status = f"[red]failed: {type(exc).__name__}[/]"
                elapsed = (time.monotonic() - started) * 1000
                console.print(
                    f"{time.strftime('%H:%M:%S')}  {event.type:<40} {event.id}  -> {status} ({elapsed:.0f} ms)",
                    highlight=False,
                )
                forwarded += 1
                if max_events is not None and forwarded >= max_events:
                    return
    finally:
        await source.close()


def run(server_url: str, api_key: str, forward_to: str, types: list[str] | None, max_events: int | None) -> None:
    main = forward_events(
        server_url, api_key, forward_to, types=types, console=Console(soft_wrap=True), max_events=max_events
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)

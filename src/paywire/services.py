"""What the web layer is handed: the engine's services, never the application root.

`PaywireApp` (the composition root) builds one `Services`; the API routes, the middleware and
the pages reach it through `request.app.state.services`. Nothing below the root imports
`PaywireApp`, so a route or page can be built and tested with just these services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paywire.billing.clock_advance import Advances
from paywire.billing.runtime import Billing
from paywire.db.engine import Database
from paywire.secrets_at_rest import Keyring
from paywire.settings import Settings


@dataclass
class Lifecycle:
    """Whether the server is going down: open event streams end at once (clients reconnect)."""

    draining: bool = False


@dataclass
class Services:
    db: Database
    billing: Billing
    settings: Settings
    max_body_bytes: int = 1 << 20
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    advances: Advances = field(default_factory=Advances)  # test-clock advances running here

    @property
    def keyring(self) -> Keyring:
        """The keys of the secrets stored encrypted: the one `PaywireApp` gave the database."""
        return self.db.keyring

    def now(self) -> float:
        return self.billing.clock.now()

    def public_url(self, request_base_url: str) -> str:
        """The base URL payers reach this server at: the `public_url` setting, else the address
        the request came to (`paywire serve` always sets it)."""
        return self.settings.public_url or request_base_url.rstrip("/")

    def drain(self) -> None:
        """The server is going down: end open event streams now (their clients reconnect)."""
        self.lifecycle.draining = True
        self.db.signal.notify()

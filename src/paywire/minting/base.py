"""What a minter is given and returns. Called by the scheduler after a checkout completes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from paywire.db.engine import Tx


@dataclass(frozen=True)
class MintRequest:
    session: dict[str, Any]  # the completed checkout session, as the API shows it
    livemode: bool
    now: float


class MintError(Exception):
    """The mint failed for good: the session's `nft_mint_status` becomes `error`."""


class Minter(Protocol):
    name: str

    async def mint(self, tx: Tx, request: MintRequest) -> dict[str, Any]:
        """Mint one token for the session; return its `nft_mint_details`.

        Runs inside the job's transaction; a minter that talks to a chain should derive the
        token from the session id, so a job retried after a crash mints the same token.
        """
        ...

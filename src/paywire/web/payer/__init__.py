"""The payer's side: hosted checkout, payment links and the customer portal (`create_app`)."""

from __future__ import annotations

from paywire.web.payer.app import MOUNT, create_app

__all__ = ["MOUNT", "create_app"]

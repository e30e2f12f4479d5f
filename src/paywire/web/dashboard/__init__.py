"""The operator dashboard at `/dashboard`: server-rendered pages over the engine's own functions.

`create_app(services)` builds it; `paywire.web.mount` mounts it on the API's root application.
"""

from paywire.web.dashboard.app import create_app

__all__ = ["create_app"]

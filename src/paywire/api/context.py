"""Per-request context: the services, the caller's mode (from the key), and the request's identity."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paywire import keys
from paywire.billing.runtime import Billing, Call
from paywire.db.engine import Database
from paywire.errors import AuthenticationFailed
from paywire.events.log import RequestInfo
from paywire.services import Services

bearer = HTTPBearer(auto_error=False, description="A secret key: `sk_test_…` or `sk_live_…`.")


@dataclass(frozen=True)
class Ctx:
    services: Services
    livemode: bool
    request: RequestInfo

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def billing(self) -> Billing:
        return self.services.billing

    def call(self) -> Call:
        """The billing engine's view of this request: its mode and identity."""
        return self.services.billing.call(self.livemode, self.request)

    def now(self) -> float:
        return self.services.now()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def authenticate(request: Request, api_key: str) -> keys.ApiKey:
    """Resolve a key to its mode, or a 401."""
    found = await keys.authenticate_cached(services_of(request).db, api_key)
    if found is None:
        raise AuthenticationFailed("invalid API key: check the Authorization: Bearer sk_… header")
    return found


async def context(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Ctx:
    if credentials is None:
        raise AuthenticationFailed("missing API key: send Authorization: Bearer sk_test_… or sk_live_…")
    key = await authenticate(request, credentials.credentials)
    return Ctx(
        services=services_of(request),
        livemode=key.livemode,
        request=RequestInfo(id=request.state.request_id, idempotency_key=request.headers.get("idempotency-key")),
    )

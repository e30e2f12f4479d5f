"""A test event for one endpoint: `webhook_endpoint.test`, delivered to that endpoint alone.

It changes nothing: its object is the endpoint as the API shows it. Other endpoints never get
it, not even those that enabled every event (`*`); the EventBus sees it like any event.
"""

from __future__ import annotations

from typing import Any

from paywire import objects
from paywire.db.engine import Tx
from paywire.db.schema import webhook_endpoints
from paywire.errors import StateError
from paywire.events.log import NewEvent, RequestInfo, append
from paywire.webhooks import endpoints

TEST_EVENT = "webhook_endpoint.test"


async def send_test_event(
    tx: Tx, endpoint_id: str, *, livemode: bool, now: float, request: RequestInfo | None = None
) -> dict[str, Any]:
    """Append a `webhook_endpoint.test` event queued to `endpoint_id` only; returns the event."""
    row = await objects.fetch(tx.conn, webhook_endpoints, endpoint_id, livemode)
    if row["status"] != "enabled":
        raise StateError(f"webhook endpoint {endpoint_id!r} is disabled; enable it first", param="id")
    new = NewEvent(TEST_EVENT, endpoints.render(row))
    [event] = await append(tx, [new], livemode=livemode, now=now, request=request, only_to=[endpoint_id])
    return event

"""The event as application code receives it: from a webhook, the EventBus or the SDK.

Standard library only, so that `paywire.webhooks.verify` stays dependency-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EventData:
    """`event.data`: the object after the change, and the fields it had before."""

    object: dict[str, Any]
    previous_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: int
    livemode: bool
    object_type: str
    object_id: str
    data: EventData
    api_version: str = ""
    created_at: str = ""
    pending_webhooks: int = 0
    request: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Event:
        """Build from the JSON body of a webhook or stream message; raises ValueError if malformed."""
        try:
            data = body["data"]
            return cls(
                id=str(body["id"]),
                type=str(body["type"]),
                created=int(body["created"]),
                livemode=bool(body.get("livemode", False)),
                object_type=str(body.get("object_type", "")),
                object_id=str(body.get("object_id", "")),
                data=EventData(
                    object=dict(data["object"]),
                    previous_attributes=dict(data.get("previous_attributes") or {}),
                ),
                api_version=str(body.get("api_version", "")),
                created_at=str(body.get("created_at", "")),
                pending_webhooks=int(body.get("pending_webhooks") or 0),
                request=dict(body.get("request") or {}),
                metadata=dict(body.get("metadata") or {}),
                raw=body,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a Paywire event: {exc!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        return (
            dict(self.raw)
            if self.raw
            else {
                "id": self.id,
                "object": "event",
                "type": self.type,
                "api_version": self.api_version,
                "livemode": self.livemode,
                "created": self.created,
                "created_at": self.created_at,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "data": {"object": self.data.object, "previous_attributes": self.data.previous_attributes},
                "request": self.request,
                "pending_webhooks": self.pending_webhooks,
                "metadata": self.metadata,
            }
        )

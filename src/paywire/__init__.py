"""Paywire: a self-hosted Payment Kit whose every state change is a typed, persisted event."""

from typing import TYPE_CHECKING

from paywire.events.event import Event, EventData

if TYPE_CHECKING:  # so that type checkers see the real classes behind the lazy names
    from paywire.app import PaywireApp
    from paywire.events.bus import EventBus
    from paywire.sdk import AsyncPaywire, Paywire

__version__ = "0.1.0"
__all__ = ["AsyncPaywire", "Event", "EventBus", "EventData", "Paywire", "PaywireApp", "__version__"]


def __getattr__(name: str) -> object:
    # Imported lazily so that `import paywire` (and `paywire.webhooks`) stays light.
    if name == "EventBus":
        from paywire.events.bus import EventBus

        return EventBus
    if name == "PaywireApp":
        from paywire.app import PaywireApp

        return PaywireApp
    if name in ("Paywire", "AsyncPaywire"):
        from paywire import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'paywire' has no attribute {name!r}")

"""Paywire: a self-hosted Payment Kit whose every state change is a typed, persisted event."""

from paywire.event import Event, EventData

__version__ = "0.1.0"
__all__ = ["Event", "EventBus", "EventData", "PaywireApp", "__version__"]


def __getattr__(name: str) -> object:
    # Imported lazily so that `import paywire` (and `paywire.webhooks`) stays light.
    if name == "EventBus":
        from paywire.events.bus import EventBus

        return EventBus
    if name == "PaywireApp":
        from paywire.app import PaywireApp

        return PaywireApp
    raise AttributeError(f"module 'paywire' has no attribute {name!r}")

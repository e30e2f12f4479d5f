"""Payment Kit's second pattern, the EventBus: a worker that reacts to subscription events.

    PAYWIRE_URL=http://localhost:8800 PAYWIRE_API_KEY=sk_test_… python examples/eventbus_worker.py

The bus is named, so it is durable: stopped and started again, it first receives, in order,
every event it missed. Each handler prints one line, `handled <type> <event id>`.
"""

from __future__ import annotations

import os

from paywire import Event, EventBus

bus = EventBus.connect(
    os.environ.get("PAYWIRE_URL", "http://127.0.0.1:8800"),
    api_key=os.environ.get("PAYWIRE_API_KEY"),
    name="example-worker",
)


def handle_subscription_start(event: Event) -> None:
    print(f"handled {event.type} {event.id}", flush=True)  # e.g. grant access to the plan


def handle_subscription_renew(event: Event) -> None:
    print(f"handled {event.type} {event.id}", flush=True)  # e.g. extend access by a period


# As in Payment Kit: one subscriber for every event, switching on its type.
# (`@bus.on("customer.subscription.started")` on a handler does the same for one type.)
@bus.subscribe
def on_event(event: Event) -> None:
    match event.type:
        case "customer.subscription.started":
            handle_subscription_start(event)
        case "customer.subscription.renewed":
            handle_subscription_renew(event)


if __name__ == "__main__":
    print("eventbus worker example-worker running (^C to stop)", flush=True)
    bus.run()

"""The event catalogue, the event log and the EventBus."""

"""Billing engine: pure money and date arithmetic, and (later) the state machines built on it."""

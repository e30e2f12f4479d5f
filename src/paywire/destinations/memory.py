"""An in-memory transport, for tests of the dispatcher's rules (caps, back-off, retries,
auto-disable) without a network: a callable decides each attempt's fate, every message is kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from paywire.destinations.base import Job, Message, SendOutcome, failure, render, success

# What an attempt does: "ok", "retry" (nothing answered), "give_up", "disable", or an HTTP-like
# status (an int) recorded as the response, e.g. 500 or 410.
Verdict = str | int


@dataclass
class MemoryDestination:
    decide: Callable[[Job], Verdict | Awaitable[Verdict]] = lambda job: "ok"
    messages: list[Message] = field(default_factory=list)  # every attempt's message, in order
    in_flight: dict[str, int] = field(default_factory=dict)  # per destination, right now
    most_in_flight: dict[str, int] = field(default_factory=dict)  # per destination, ever
    closed: bool = False

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        started = time.monotonic()
        self.messages.append(render(job))
        key = job.endpoint_id
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.most_in_flight[key] = max(self.most_in_flight.get(key, 0), self.in_flight[key])
        try:
            verdict = self.decide(job)
            if asyncio.iscoroutine(verdict) or isinstance(verdict, asyncio.Future):
                verdict = await verdict
        finally:
            self.in_flight[key] -= 1
        if verdict == "ok":
            return success(job, started)
        if isinstance(verdict, int):
            outcome = failure(job, started, "http_status", f"HTTP {verdict}")
            outcome.status = verdict
            return outcome
        if verdict == "give_up":
            return failure(job, started, "rejected", "rejected", give_up=True)
        if verdict == "disable":
            return failure(job, started, "rejected", "destination gone", disable=True)
        return failure(job, started, "connection_refused", "connection refused")

    async def close(self) -> None:
        self.closed = True

"""HTTP webhooks: today's sender (`webhooks.sender`), over one pooled aiohttp session per mode."""

from __future__ import annotations

import aiohttp

from paywire.destinations.base import Job, SendOutcome
from paywire.webhooks import netpolicy, sender


class WebhookDestination:
    """Every webhook endpoint shares it: one keep-alive connector per mode (live mode guarded
    against private addresses), at most `concurrency` connections in all."""

    def __init__(self, *, concurrency: int, allow_private_networks: bool) -> None:
        self._concurrency = concurrency
        self._allow_private = allow_private_networks
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def session(self, livemode: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(livemode)
        if session is None:
            guard = livemode and not self._allow_private
            connector = aiohttp.TCPConnector(
                limit=self._concurrency,
                limit_per_host=0,
                keepalive_timeout=30,
                ttl_dns_cache=60,
                socket_factory=netpolicy.guarded_socket if guard else None,
            )
            session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False, skip_auto_headers=("Accept",)
            )
            self._sessions[livemode] = session
        return session

    async def send(self, job: Job, *, timeout: float) -> SendOutcome:
        return await sender.send(self.session(job.livemode), job, timeout=timeout)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

"""The webhook dispatcher: claim due deliveries, POST them concurrently, record every attempt.

One loop claims batches (woken within milliseconds by `db.signal` after a commit, polling as the
fallback) into per-endpoint queues; "lanes", one per request in flight, POST them one after
another through a pooled keep-alive aiohttp connector; a writer task records finished attempts
in batches, one transaction per batch.

Isolation: each endpoint has its own concurrency cap, enforced at claim time, so a slow or dead
endpoint never occupies more than its share of the global concurrency. An endpoint that keeps
failing is backed off: it is skipped for a while, then probed with one request at a time until
a success restores its full cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp

from paywire.db.engine import Database, is_unavailable
from paywire.ids import new_id
from paywire.webhooks import attempts, delivery, netpolicy
from paywire.webhooks.delivery import Job
from paywire.webhooks.retry import JITTER, RETRY_SCHEDULE
from paywire.webhooks.sender import Outcome, send

log = logging.getLogger("paywire.webhooks")

ENDPOINTS_REFRESH = 1.0  # seconds a claim may rely on the list of enabled endpoints it read
GONE_PAUSE = 5.0  # seconds nothing more is sent to an endpoint that answered 410 (it is being disabled)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass
class DeliveryConfig:
    concurrency: int = 200  # requests in flight, all endpoints together
    per_endpoint: int = 10  # requests in flight to one endpoint
    timeout: float = 15.0
    schedule: tuple[float, ...] = RETRY_SCHEDULE
    jitter: float = JITTER
    lease: float | None = None  # seconds a claim is held; default: timeout + 30
    batch_size: int = 500
    poll_interval: float = 1.0
    failures_before_backoff: int = 3  # consecutive failures that make an endpoint "failing"
    max_backoff: float = 10.0
    auto_disable_after: float = attempts.AUTO_DISABLE_AFTER
    shutdown_grace: float = 5.0
    record_linger: float = 0.05  # seconds the attempts writer waits to fill a batch
    allow_private_networks: bool = field(default_factory=netpolicy.private_networks_allowed)

    @property
    def lease_seconds(self) -> float:
        return self.lease if self.lease is not None else self.timeout + 30.0

    @classmethod
    def from_env(cls, **overrides: object) -> DeliveryConfig:
        """Defaults, then `PAYWIRE_WEBHOOK_*` environment variables, then `overrides`."""
        config = cls(
            timeout=_env_float("PAYWIRE_WEBHOOK_TIMEOUT", 15.0),
            poll_interval=_env_float("PAYWIRE_WEBHOOK_POLL_INTERVAL", 1.0),
        )
        if os.environ.get("PAYWIRE_WEBHOOK_LEASE"):
            config.lease = float(os.environ["PAYWIRE_WEBHOOK_LEASE"])
        if os.environ.get("PAYWIRE_WEBHOOK_RETRY_SCHEDULE"):
            config.schedule = tuple(float(s) for s in os.environ["PAYWIRE_WEBHOOK_RETRY_SCHEDULE"].split(","))
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config


@dataclass
class _EndpointState:
    queue: deque[Job] = field(default_factory=deque)  # claimed, waiting for a free slot
    lanes: int = 0  # tasks sending this endpoint's queue, one request each at a time
    starting: int = 0  # of those, lanes created that have not taken a delivery yet
    failures: int = 0  # consecutive failures without an HTTP response (timeouts, refusals)
    more: bool = True  # the last claim took all it asked for: more may be due in the database
    paused_until: float = 0.0
    gone_until: float = 0.0  # answered 410: send nothing until its disabling is recorded and re-read


class Dispatcher:
    """A `Service` of `PaywireApp`; also run alone by `paywire worker`.

    Claims run ahead of sending: each healthy endpoint keeps up to `prefetch` times its cap claimed
    in memory, so a finished request is followed at once by the next one, without a database
    round trip per delivery. A request is only started while its claim has time left to cover
    it; a claim that ran short is given back.
    """

    prefetch = 50

    def __init__(self, db: Database, config: DeliveryConfig | None = None) -> None:
        self.db = db
        self.config = config or DeliveryConfig.from_env()
        self.owner = new_id("wkr")
        self.policy = attempts.RetryPolicy(self.config.schedule, self.config.jitter, self.config.auto_disable_after)
        self._endpoints: dict[str, _EndpointState] = {}
        self._lanes: set[asyncio.Task[None]] = set()
        self._running = 0  # lanes not yet finished: the global concurrency in use
        self._in_flight: set[int] = set()  # deliveries (seq) being sent right now
        self._slot_wanted = False  # an endpoint has work but every global slot is taken
        self._queued = 0
        self._claims = 0
        self._enabled: list[str] = []
        self._endpoints_read = 0.0
        self._starved = False
        self._expired: list[int] = []  # claims that ran short before being sent: give back
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._kick = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self.sent = 0  # attempts made by this dispatcher (for benchmarks and logs)
        # A request starts only with this much of its claim left (a full timeout, when it can).
        self._lease_margin = min(self.config.timeout + 5, self.config.lease_seconds / 2)

    # --- lifecycle ----------------------------------------------------------------------

    def _session(self, livemode: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(livemode)
        if session is None:
            guard = livemode and not self.config.allow_private_networks
            connector = aiohttp.TCPConnector(
                limit=self.config.concurrency,
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

    async def start(self) -> None:
        self._stopping = False
        self._loop_task = asyncio.create_task(self._claim_loop(), name="paywire-dispatch")
        self._writer_task = asyncio.create_task(self._write_loop(), name="paywire-attempts")

    async def stop(self) -> None:
        """Stop claiming, let in-flight requests finish (briefly), record them, give back the rest."""
        self._stopping = True
        self._kick.set()
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        unsent = list(self._expired)
        for state in self._endpoints.values():
            unsent += [job.seq for job in state.queue]
            state.queue.clear()
        self._queued = 0
        if self._lanes:
            await asyncio.wait(list(self._lanes), timeout=self.config.shutdown_grace)
        unsent += list(self._in_flight)  # still unanswered: their outcome is unknown, others may retry
        for task in list(self._lanes):
            task.cancel()
        if self._writer_task:
            self._outcomes.put_nowait(_STOP)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer_task
        if unsent:
            with contextlib.suppress(Exception):
                async with self.db.transaction() as tx:
                    await delivery.release(tx, self.owner, unsent)
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    # --- claiming -----------------------------------------------------------------------

    def _state(self, endpoint_id: str) -> _EndpointState:
        state = self._endpoints.get(endpoint_id)
        if state is None:
            state = self._endpoints[endpoint_id] = _EndpointState()
        return state

    def _failing(self, state: _EndpointState) -> bool:
        return state.failures >= self.config.failures_before_backoff

    def _cap(self, state: _EndpointState) -> int:
        return 1 if self._failing(state) else self.config.per_endpoint

    def _want(self, state: _EndpointState) -> int:
        """How many more deliveries to claim for this endpoint (a failing one: no read-ahead)."""
        ahead = 1 if self._failing(state) else self.prefetch
        return self._cap(state) * ahead - state.lanes - len(state.queue)

    def _quotas(self, now: float) -> tuple[dict[str, int], list[str]]:
        quotas: dict[str, int] = {}
        exclude: list[str] = []
        full = self.config.per_endpoint * self.prefetch
        for endpoint_id, state in self._endpoints.items():
            want = self._want(state)
            if want <= 0 or state.paused_until > now or state.gone_until > now:
                exclude.append(endpoint_id)
            elif want < full:
                quotas[endpoint_id] = want
        return quotas, exclude

    def _room(self) -> int:
        """Claims this dispatcher can still hold: read-ahead for its whole concurrency."""
        return self.config.concurrency * 4 - len(self._in_flight) - self._queued

    async def _claim_loop(self) -> None:
        signal = self.db.signal
        while not self._stopping:
            snapshot = signal.snapshot()
            self._kick.clear()
            limit = min(self._room(), self.config.batch_size)
            claimed: list[Job] = []
            self._starved = limit <= 0
            if limit > 0 or self._expired:
                try:
                    claimed = await self._claim(max(limit, 0))
                except Exception as exc:
                    log.warning("claiming deliveries failed (%s); retrying", exc, exc_info=not is_unavailable(exc))
                    await asyncio.sleep(min(self.config.poll_interval, 1.0))
                    continue
            self._pump_all()  # also restarts endpoints whose pause has ended
            if limit > 0 and len(claimed) >= limit:
                self._starved = True
                continue  # more may be due right now
            # Sleep until a commit (signal), a queue running low (kick) or the poll interval.
            waits = [asyncio.ensure_future(snapshot.wait()), asyncio.ensure_future(self._kick.wait())]
            try:
                await asyncio.wait(waits, timeout=self._poll_timeout(), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def _poll_timeout(self) -> float:
        # Wake early when a backed-off endpoint's pause ends.
        now = time.time()
        pauses = [s.paused_until - now for s in self._endpoints.values() if s.paused_until > now]
        return max(0.001, min([self.config.poll_interval, *pauses]))

    async def _claim(self, limit: int) -> list[Job]:
        now = time.time()
        quotas, exclude = self._quotas(now)
        expired, self._expired = self._expired, []
        self._claims += 1
        async with self.db.transaction() as tx:
            await delivery.release(tx, self.owner, expired)
            if now - self._endpoints_read > ENDPOINTS_REFRESH:
                self._enabled = await delivery.enabled_endpoints(tx)
                self._endpoints_read = now
                self._drop_disabled()
            claimed = await delivery.claim(
                tx,
                owner=self.owner,
                now=now,
                lease=self.config.lease_seconds,
                limit=limit,
                quotas=quotas,
                default_quota=self.config.per_endpoint * self.prefetch,
                exclude=exclude,
                start=self._claims,
                endpoints=self._enabled,
            )
        counts: dict[str, int] = {}
        for job in claimed:
            self._state(job.endpoint_id).queue.append(job)
            counts[job.endpoint_id] = counts.get(job.endpoint_id, 0) + 1
        self._queued += len(claimed)
        full = self.config.per_endpoint * self.prefetch
        skipped = set(exclude)
        for endpoint_id, state in self._endpoints.items():
            if endpoint_id not in skipped:
                state.more = counts.get(endpoint_id, 0) >= quotas.get(endpoint_id, full)
        return claimed

    def _drop_disabled(self) -> None:
        """Endpoints disabled or deleted since their deliveries were claimed: send no more."""
        enabled = set(self._enabled)
        for endpoint_id, state in list(self._endpoints.items()):
            if endpoint_id not in enabled:
                self._give_back(state)
                if not state.lanes:
                    del self._endpoints[endpoint_id]

    def _give_back(self, state: _EndpointState) -> None:
        self._expired += [job.seq for job in state.queue]
        self._queued -= len(state.queue)
        state.queue.clear()

    # --- sending ------------------------------------------------------------------------

    def _pump_all(self, last: _EndpointState | None = None) -> None:
        """Open lanes wherever there is queued work; `last` (which just gave up a slot) goes last."""
        for state in self._endpoints.values():
            if state.queue and state is not last:
                self._pump(state)
        if last is not None and last.queue:
            self._pump(last)

    def _pump(self, state: _EndpointState) -> None:
        """Open lanes for queued deliveries while the endpoint and the dispatcher have free slots."""
        now = time.time()
        if state.paused_until > now or state.gone_until > now:
            return
        while len(state.queue) > state.starting and state.lanes < self._cap(state):
            if self._running >= self.config.concurrency:
                self._slot_wanted = True
                break
            state.lanes += 1
            state.starting += 1
            self._running += 1
            lane = asyncio.create_task(self._lane(state))
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)

    def _next(self, state: _EndpointState) -> Job | None:
        """The endpoint's next delivery to send now, if this lane should go on sending."""
        now = time.time()
        while state.queue and state.lanes <= self._cap(state) and not self._stopping:
            if state.paused_until > now or state.gone_until > now:
                return None
            job = state.queue.popleft()
            self._queued -= 1
            if job.lease_until - now >= self._lease_margin:
                return job
            self._expired.append(job.seq)  # could outlast its claim: another worker may take it
        return None

    async def _lane(self, state: _EndpointState) -> None:
        """Send an endpoint's queued deliveries one after another: one of its `_cap` slots.

        A lane per request in flight, rather than a task per delivery, keeps the event loop's
        work per delivery to the request itself.
        """
        state.starting -= 1
        try:
            while (job := self._next(state)) is not None:
                self._in_flight.add(job.seq)
                outcome = await send(self._session(job.livemode), job, timeout=self.config.timeout)
                self._in_flight.discard(job.seq)
                self.sent += 1
                self._health(state, outcome)
                self._outcomes.put_nowait(outcome)
                if state.more and len(state.queue) <= self._cap(state) * self.prefetch // 2:
                    state.more = False
                    self._kick.set()  # half empty and more waiting: claim more, in one batch
                if self._starved:
                    self._starved = False
                    self._kick.set()  # the last claim was cut short by our own limit
                if self._slot_wanted:
                    break  # hand this global slot to an endpoint that is waiting for one
        finally:
            state.lanes -= 1
            self._running -= 1
        if self._slot_wanted and not self._stopping:
            self._slot_wanted = False
            self._pump_all(last=state)

    def _health(self, state: _EndpointState, outcome: Outcome) -> None:
        """Back off endpoints that cannot be reached or time out (they hold connections for long).

        An endpoint that answers, even with an error status, frees its slot at once and costs the
        others nothing: its deliveries just follow the retry schedule.
        """
        if outcome.status == 410:
            self._give_back(state)  # the endpoint is being disabled: the rest stay pending
            self._endpoints_read = 0.0  # re-read the enabled endpoints at the next claim
            # Until the disabling commits, the endpoint still reads as enabled: claim and send
            # nothing more to it meanwhile (each further 410 would fail its delivery for good).
            state.gone_until = time.time() + GONE_PAUSE
        if outcome.status is not None:
            state.failures, state.paused_until = 0, 0.0
            return
        state.failures += 1
        over = state.failures - self.config.failures_before_backoff
        if over >= 0:
            state.paused_until = time.time() + min(self.config.max_backoff, 0.5 * 2 ** min(over, 10))

    # --- recording ----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._outcomes.get()]
            # Linger a moment so one transaction records many attempts (the receiver already has
            # them; recording later only holds the lease a little longer).
            if batch[0] is not _STOP and not self._stopping:
                await asyncio.sleep(self.config.record_linger)
            while not self._outcomes.empty() and len(batch) < 2000:
                batch.append(self._outcomes.get_nowait())
            if any(o is _STOP for o in batch):
                stopping = True
                batch = [o for o in batch if o is not _STOP]
            await self._write(batch)

    async def _write(self, batch: list[Outcome]) -> None:
        delay = 0.1
        deadline = time.monotonic() + self.config.lease_seconds
        while batch:
            try:
                async with self.db.transaction() as tx:
                    await attempts.record(tx, batch, owner=self.owner, now=time.time(), policy=self.policy)
                return
            except Exception as exc:
                # The rows stay leased to us; if we never manage to write, the lease expires and
                # another attempt is made (at least once). Keep trying while the lease holds.
                log.warning("recording %d attempts failed (%s); retrying", len(batch), exc)
                if (self._stopping and delay > 2) or time.monotonic() > deadline:
                    log.error("dropping %d attempt records; those deliveries will be re-sent", len(batch))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


_STOP: Outcome = Outcome.__new__(Outcome)

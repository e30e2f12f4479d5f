"""The delivery dispatcher: claim due deliveries, send them concurrently, record every attempt.

Sending goes through the destination of each delivery's type (`paywire.destinations`: HTTP
webhooks, RabbitMQ, NATS, Redis); everything here (claims, caps, back-off, retries, recording)
is the same for every type.

One loop runs "turns": each is one transaction that records the attempts finished since the
last one and claims a batch of due deliveries into per-endpoint queues. It is woken within
milliseconds by `db.signal` after a commit, by a queue running low, or by polling as the
fallback. "Lanes", one per request in flight, POST the queued deliveries one after another
through a pooled keep-alive aiohttp connector.

Isolation: each endpoint has its own concurrency cap, enforced at claim time, so a slow or dead
endpoint never occupies more than its share of the global concurrency. An endpoint that keeps
failing is backed off: it is skipped for a while, then probed with one request at a time until
a success restores its full cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from paywire.db.engine import Database, Tx, is_unavailable
from paywire.destinations.base import Destination
from paywire.destinations.pool import Pool
from paywire.events import targets
from paywire.ids import new_id
from paywire.secrets_at_rest import Keyring
from paywire.webhooks import attempts, delivery
from paywire.webhooks.delivery import Job
from paywire.webhooks.retry import JITTER, RETRY_SCHEDULE
from paywire.webhooks.sender import SendOutcome

log = logging.getLogger("paywire.webhooks")

ENDPOINTS_REFRESH = 1.0  # seconds a claim may rely on the list of enabled endpoints it read
# Once that long, the list is read again only if it changed (`events.targets.bump`), or after
# this many seconds (a change written past `bump`): reading 10,000 took 20-40 ms.
ENDPOINTS_REREAD = 30.0
GONE_PAUSE = 5.0  # seconds nothing more is sent to an endpoint that answered 410 (it is being disabled)
READ_AHEAD = 0.25  # seconds of an endpoint's measured sending rate kept claimed ahead of its lanes
MAX_HELD = 4000  # claimed deliveries one dispatcher holds in memory, all endpoints together
# Turns woken by commits start at least this far apart: under a steady trickle of events, every
# worker would otherwise run a transaction per commit (measured at 500 events/s with two
# workers: 0.9 of 2 cores, and a p99 latency swinging from 25 to 75 ms on the saturated machine).
MIN_TURN_GAP = 0.005


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
    record_linger: float = 0.1  # seconds finished attempts wait, to be recorded together
    allow_private_networks: bool = False  # settings.allow_private_networks (see paywire.app.delivery_config)

    @property
    def lease_seconds(self) -> float:
        return self.lease if self.lease is not None else self.timeout + 30.0


@dataclass
class _EndpointState:
    queue: deque[Job] = field(default_factory=deque)  # claimed, waiting for a free slot
    lanes: int = 0  # tasks sending this endpoint's queue, one request each at a time
    starting: int = 0  # of those, lanes created that have not taken a delivery yet
    failures: int = 0  # consecutive failures without an HTTP response (timeouts, refusals)
    more: bool = True  # the last claim took all it asked for: more may be due in the database
    ahead: int = 0  # deliveries to keep claimed for it (from its measured rate)
    sent: int = 0  # attempts finished, and the rate they finish at (per second, smoothed)
    rate: float = 0.0
    rate_at: float = 0.0
    rate_sent: int = 0
    paused_until: float = 0.0
    gone_until: float = 0.0  # answered 410: send nothing until its disabling is recorded and re-read
    seen: int = 0  # the turn its read-ahead was last worked out (an idle endpoint's: when next asked)
    waiting: bool = False  # in the dispatcher's queue for a global slot


class _Quotas(Mapping[str, int]):
    """A claim's quota per endpoint: worked out each turn for the endpoints with work in hand,
    and for an idle one only when the claim asks it (iterating gives those worked out so far).

    After a fan-out, thousands of endpoints are idle: working out all their quotas every turn
    cost ~15 ms a turn at 10,000. `quota` raises KeyError for an endpoint never seen (the claim
    then gives it its default).
    """

    def __init__(self, quota: Callable[[str], int]) -> None:
        self.known: dict[str, int] = {}
        self._quota = quota

    def __getitem__(self, endpoint_id: str) -> int:
        quota = self.known.get(endpoint_id)
        if quota is None:
            quota = self.known[endpoint_id] = self._quota(endpoint_id)
        return quota

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)


class Dispatcher:
    """A `Service` of `PaywireApp`; also run alone by `paywire worker`.

    Claims run ahead of sending: each healthy endpoint keeps about `READ_AHEAD` seconds of its
    measured sending rate claimed in memory (at least 2, at most `prefetch`, per slot), so a
    finished request is followed at once by the next one, and a batch is claimed well before the
    queue runs dry. A slow endpoint gets little read-ahead, so its claims do not lapse unsent.
    A request is only started while its claim has time left to cover it; a claim that ran short
    is given back.
    """

    prefetch = 100  # most deliveries claimed ahead per slot of an endpoint
    first_claim = 50  # per slot, for an endpoint whose rate is not known yet

    def __init__(
        self,
        db: Database,
        config: DeliveryConfig | None = None,
        keyring: Keyring | None = None,
        transports: Mapping[str, Destination] | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring or db.keyring  # decrypts the endpoints' signing secrets
        self.config = config or DeliveryConfig()
        self.owner = new_id("wkr")
        self.policy = attempts.RetrySchedule(self.config.schedule, self.config.jitter, self.config.auto_disable_after)
        self._endpoints: dict[str, _EndpointState] = {}
        # Of those, the ones with deliveries queued or in flight, or paused: only these are
        # walked every turn (an idle one is looked at when a claim asks it).
        self._busy: dict[str, _EndpointState] = {}
        self._turns = 0
        self._lanes: set[asyncio.Task[None]] = set()
        self._running = 0  # lanes not yet finished: the global concurrency in use
        self._in_flight: set[int] = set()  # deliveries (seq) being sent right now
        # Endpoints with work that found every global slot taken, in the order they asked: a slot
        # that comes free goes to the first (one walk over every busy endpoint per finished lane
        # was a fan-out's largest dispatcher cost: hundreds of endpoints, one delivery each).
        self._waiting: deque[_EndpointState] = deque()
        self._queued = 0
        self._claims = 0  # claim turns (for benchmarks and tests)
        # Claims go round the enabled endpoints: the next one starts at `_cursor`, and a round
        # ("pass") goes on, claim after claim, until `_pass_left` endpoints have been dealt with.
        self._cursor = 0
        self._pass_left = 0
        self._enabled: list[str] = []
        self._ordered: set[str] = set()  # of those, destinations with `ordering: per_object`
        self._endpoints_read = 0.0  # when the list was last known to be current
        self._endpoints_reread = 0.0  # when it was last read
        self._endpoints_token: str | None = None  # `events.targets` token it was read under
        self._starved = False
        self._expired: list[int] = []  # claims that ran short before being sent: give back
        self._finished: list[SendOutcome] = []  # attempts made, not yet recorded
        self._finished_since = 0.0  # monotonic time the oldest of them finished
        self._recordable = asyncio.Event()  # `_finished` became non-empty
        self._kick = asyncio.Event()
        self._stopping = False  # no more claims or requests
        self._closing = False  # lanes are done: one last turn, then the loop ends
        self._loop_task: asyncio.Task[None] | None = None
        # Transports, by destination type (`paywire.destinations`); `transports` replaces a type's
        # (tests use the in-memory one).
        self.destinations = Pool(
            concurrency=self.config.concurrency,
            allow_private_networks=self.config.allow_private_networks,
            overrides=transports,
        )
        self.sent = 0  # attempts made by this dispatcher (for benchmarks and logs)
        # A request starts only with this much of its claim left (a full timeout, when it can).
        self._lease_margin = min(self.config.timeout + 5, self.config.lease_seconds / 2)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = self._closing = False
        self._loop_task = asyncio.create_task(self._database_loop(), name="paywire-dispatch")

    async def stop(self) -> None:
        """Stop claiming, let in-flight requests finish (briefly), record them, give back the rest."""
        self._stopping = True
        for state in self._endpoints.values():
            self._give_back(state)
        if self._lanes:
            await asyncio.wait(list(self._lanes), timeout=self.config.shutdown_grace)
        for task in list(self._lanes):
            task.cancel()
        self._expired += self._in_flight  # still unanswered: their outcome is unknown, others may retry
        self._in_flight = set()
        self._closing = True
        self._kick.set()
        if self._loop_task:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        await self.destinations.close()

    # --- claiming -----------------------------------------------------------------------

    def _state(self, endpoint_id: str) -> _EndpointState:
        state = self._endpoints.get(endpoint_id)
        if state is None:
            ahead = self.config.per_endpoint * self.first_claim
            state = _EndpointState(ahead=ahead, rate_at=time.time(), seen=self._turns)
            self._endpoints[endpoint_id] = state
        return state

    def _failing(self, state: _EndpointState) -> bool:
        return state.failures >= self.config.failures_before_backoff

    def _cap(self, state: _EndpointState) -> int:
        return 1 if self._failing(state) else self.config.per_endpoint

    def _read_ahead(self, state: _EndpointState, now: float) -> int:
        """How many deliveries to keep claimed for this endpoint (a failing one: no read-ahead)."""
        elapsed = now - state.rate_at
        unseen = self._turns - state.seen  # more than 1: it was idle, and not looked at meanwhile
        state.seen = self._turns
        if state.sent == 0 and not self._failing(state):
            # Nothing finished yet, so no rate: keep the first claim's size. (A read-ahead of
            # 2 per slot here made the lanes kick a refill only once their queue was nearly
            # empty, and they stood idle for a turn on the very first batch.)
            return state.ahead
        if elapsed >= 0.05:
            # Decay the rate of an idle endpoint as the turns that skipped it would have: once a
            # turn, at most once per 0.05 s. (So a slow endpoint back from idle is not given a
            # large claim that lapses unsent, as when every turn looked at every endpoint.)
            state.rate *= 0.7 ** max(0, min(unseen, int(elapsed / 0.05)) - 1)
            current = (state.sent - state.rate_sent) / elapsed
            # Follow a rising rate at once (or the queue runs dry), a falling one gradually.
            state.rate = current if current > state.rate else 0.7 * state.rate + 0.3 * current
            state.rate_at, state.rate_sent = now, state.sent
        cap = self._cap(state)
        if self._failing(state):
            return cap
        return max(cap * 2, min(cap * self.prefetch, int(state.rate * READ_AHEAD)))

    def _quota(self, state: _EndpointState, now: float) -> int:
        """How many deliveries to claim for this endpoint now (0: none, it is full or paused)."""
        state.ahead = self._read_ahead(state, now)
        want = state.ahead - state.lanes - len(state.queue)
        # Refill once half is used, not after every few sends: claims come in large batches.
        full_enough = len(state.queue) > state.ahead // 2
        if want <= 0 or full_enough or state.paused_until > now or state.gone_until > now:
            return 0
        return want

    def _quotas(self, now: float) -> tuple[_Quotas, list[str]]:
        """Per endpoint this dispatcher knows: how many to claim, or that it takes none now.

        Only the busy endpoints are walked; an idle one's quota is worked out if the claim asks.
        """
        self._turns += 1
        quotas = _Quotas(lambda endpoint_id: self._quota(self._endpoints[endpoint_id], now))
        exclude: list[str] = []
        for endpoint_id, state in list(self._busy.items()):
            if not (state.queue or state.lanes or state.paused_until > now or state.gone_until > now):
                del self._busy[endpoint_id]  # idle now
            elif want := self._quota(state, now):
                quotas.known[endpoint_id] = want
            else:
                exclude.append(endpoint_id)
        return quotas, exclude

    def _may_claim(self, now: float, exclude: list[str]) -> bool:
        """Could a claim take anything? Not when every enabled endpoint is excluded (full or
        paused), unless the list of enabled endpoints is due to be read again."""
        if now - self._endpoints_read > ENDPOINTS_REFRESH:
            return True
        skipped = set(exclude)
        return any(endpoint_id not in skipped for endpoint_id in self._enabled)

    def _room(self) -> int:
        """Claims this dispatcher can still hold."""
        return MAX_HELD - len(self._in_flight) - self._queued

    async def _database_loop(self) -> None:
        """Turn after turn, one transaction each: record finished attempts, give back, claim more.

        Recording and claiming share their transaction: apart, on SQLite, each would wait for
        the one write lock while the other holds it, and the send queues would run dry.
        """
        signal = self.db.signal
        delay = 0.1
        while True:
            started = time.monotonic()
            snapshot = signal.snapshot()
            self._kick.clear()
            closing = self._closing
            limit = 0 if self._stopping else min(self._room(), self.config.batch_size)
            self._starved = limit <= 0 and not self._stopping
            try:
                claimed = await self._turn(limit)
                delay = 0.1
            except Exception as exc:
                log.warning("dispatcher transaction failed (%s); retrying", exc, exc_info=not is_unavailable(exc))
                self._drop_lapsed()
                if closing and delay > 2:
                    unrecorded = len(self._finished)
                    log.error("stopping with %d attempts unrecorded; those deliveries will be re-sent", unrecorded)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if closing:
                return
            self._pump_all()  # also restarts endpoints whose pause has ended
            if limit > 0 and len(claimed) >= limit:
                self._starved = True
                continue  # more may be due right now
            if limit > 0 and self._pass_left > 0:
                continue  # endpoints this round has not got to yet may have due work
            await self._wait(snapshot)
            gap = started + MIN_TURN_GAP - time.monotonic()
            if gap > 0 and not self._stopping:
                await asyncio.sleep(gap)

    async def _wait(self, snapshot: asyncio.Event) -> None:
        """Sleep until a commit (signal), a queue running low (kick), the poll interval, or the
        moment finished attempts have waited `record_linger` (so one turn records many)."""
        while True:
            timeout = self._poll_timeout()
            if self._finished:
                timeout = min(timeout, self._linger_left())
                if timeout <= 0:
                    return
            self._recordable.clear()
            waits = [asyncio.ensure_future(snapshot.wait()), asyncio.ensure_future(self._kick.wait())]
            if not self._finished:
                waits.append(asyncio.ensure_future(self._recordable.wait()))
            try:
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if not done or not self._recordable.is_set() or self._kick.is_set() or snapshot.is_set():
                return  # woken by a commit, a kick or the clock (not only by a first finished attempt)

    def _poll_timeout(self) -> float:
        # Wake early when a backed-off endpoint's pause ends.
        now = time.time()
        pauses = [s.paused_until - now for s in self._busy.values() if s.paused_until > now]
        return max(0.001, min([self.config.poll_interval, *pauses]))

    def _linger_left(self) -> float:
        """Seconds until the unrecorded attempts have waited `record_linger` (0 or less: now)."""
        return self._finished_since + self.config.record_linger - time.monotonic()

    def _record_now(self) -> bool:
        """Record in this turn? Once attempts have lingered (or are many): a turn woken by each
        commit of a steady trickle would otherwise also record two or three attempts each time."""
        if not self._finished:
            return False
        return self._linger_left() <= 0 or self._stopping or len(self._finished) >= self.config.batch_size

    async def _turn(self, limit: int) -> list[Job]:
        now = time.time()
        since = self._finished_since
        finished: list[SendOutcome] = []
        if self._record_now():
            finished, self._finished = self._finished, []
        expired, self._expired = self._expired, []
        quotas, exclude = self._quotas(now)
        if limit > 0 and not self._may_claim(now, exclude):
            limit = 0
        if limit <= 0:
            self._pass_left = 0
        if not finished and not expired and limit <= 0:
            return []  # nothing to write or to ask: no transaction
        claimed: list[Job] = []
        try:
            async with self.db.transaction() as tx:
                await attempts.record(tx, finished, owner=self.owner, now=now, policy=self.policy)
                await delivery.release(tx, self.owner, expired)
                if limit > 0:
                    self._claims += 1
                    if now - self._endpoints_read > ENDPOINTS_REFRESH:
                        await self._refresh_endpoints(tx, now)
                    if self._pass_left <= 0:
                        self._pass_left = len(self._enabled)  # a new round
                    claimed, covered = await delivery.claim_from(
                        tx,
                        owner=self.owner,
                        now=now,
                        lease=self.config.lease_seconds,
                        limit=limit,
                        quotas=quotas,
                        default_quota=self.config.per_endpoint * self.first_claim,
                        exclude=exclude,
                        start=self._cursor,
                        endpoints=self._enabled,
                        keyring=self.keyring,
                        ordered=self._ordered,
                    )
                    if self._enabled:
                        self._cursor = (self._cursor + covered) % len(self._enabled)
                    self._pass_left -= max(covered, 1)
        except BaseException:
            # Nothing of the turn was written: keep its work for the next one.
            if finished:
                self._finished[:0] = finished
                self._finished_since = since
            self._expired += expired
            raise
        if self._stopping:
            self._expired += [job.seq for job in claimed]  # stop() came meanwhile: give them back
            return claimed
        counts: dict[str, int] = {}
        for job in claimed:
            state = self._busy[job.endpoint_id] = self._state(job.endpoint_id)
            state.queue.append(job)
            counts[job.endpoint_id] = counts.get(job.endpoint_id, 0) + 1
        self._queued += len(claimed)
        if limit > 0:
            self._note_more(quotas, counts, cut_short=len(claimed) >= limit)
        return claimed

    def _note_more(self, quotas: _Quotas, counts: Mapping[str, int], *, cut_short: bool) -> None:
        """Which endpoints the claim asked may have more due: those that got all they asked for,
        or all of them when the batch limit, not their quotas, ended the claim (else an endpoint
        cut short waited for the linger before its next refill: its queue ran dry).

        Only endpoints with a quota matter: `more` is read by lanes, and an idle endpoint gets
        lanes only through a claim, which sets it.
        """
        first = self.config.per_endpoint * self.first_claim
        for endpoint_id in {*quotas, *counts}:
            state = self._endpoints.get(endpoint_id)
            if state is not None:
                state.more = cut_short or counts.get(endpoint_id, 0) >= quotas.get(endpoint_id, first)

    async def _refresh_endpoints(self, tx: Tx, now: float) -> None:
        """Read the enabled endpoints again if they changed since (or were read long ago)."""
        token = await targets.token(tx.conn)
        stale = now - self._endpoints_reread > ENDPOINTS_REREAD
        if token is None or token != self._endpoints_token or stale:
            self._enabled = await delivery.enabled_endpoints(tx)
            self._ordered = await delivery.ordered_endpoints(tx)
            self._endpoints_token, self._endpoints_reread = token, now
            self._drop_disabled()
        self._endpoints_read = now

    def _drop_lapsed(self) -> None:
        """Attempts that could not be recorded before their claim lapsed: another dispatcher may
        have claimed those deliveries again, and its outcome decides. Logged, then let go."""
        now = time.time()
        lapsed = [o for o in self._finished if o.job.lease_until <= now]
        if lapsed:
            log.error("dropping %d attempt records; those deliveries will be re-sent", len(lapsed))
            self._finished = [o for o in self._finished if o.job.lease_until > now]

    def _drop_disabled(self) -> None:
        """Endpoints disabled or deleted since their deliveries were claimed: send no more."""
        enabled = set(self._enabled)
        for endpoint_id, state in list(self._endpoints.items()):
            if endpoint_id not in enabled:
                self._give_back(state)
                if not state.lanes:
                    del self._endpoints[endpoint_id]
                    self._busy.pop(endpoint_id, None)

    def _give_back(self, state: _EndpointState) -> None:
        self._expired += [job.seq for job in state.queue]
        self._queued -= len(state.queue)
        state.queue.clear()

    # --- sending ------------------------------------------------------------------------

    def _pump_all(self) -> None:
        """Open lanes wherever there is queued work."""
        for state in self._busy.values():
            if state.queue:
                self._pump(state)

    def _pump(self, state: _EndpointState) -> None:
        """Open lanes for queued deliveries while the endpoint and the dispatcher have free slots."""
        now = time.time()
        if state.paused_until > now or state.gone_until > now:
            return
        while len(state.queue) > state.starting and state.lanes < self._cap(state):
            if self._running >= self.config.concurrency:
                if not state.waiting:
                    state.waiting = True
                    self._waiting.append(state)
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
                outcome = await self.destinations.get(job).send(job, timeout=self.config.timeout)
                self._in_flight.discard(job.seq)
                self.sent += 1
                state.sent += 1
                self._health(state, outcome)
                if not self._finished:
                    self._finished_since = time.monotonic()
                    self._recordable.set()
                self._finished.append(outcome)
                if state.more and len(state.queue) <= state.ahead // 2:
                    state.more = False
                    self._kick.set()  # half empty and more waiting: claim more, in one batch
                if self._starved:
                    self._starved = False
                    self._kick.set()  # the last claim was cut short by our own limit
                if self._waiting:
                    break  # hand this global slot to an endpoint that is waiting for one
        finally:
            state.lanes -= 1
            self._running -= 1
        if self._waiting and not self._stopping:
            self._hand_off_slot()
            self._pump(state)  # this endpoint goes last: after the ones that were waiting

    def _hand_off_slot(self) -> None:
        """Free global slots go to the endpoints waiting for one, first come first served."""
        while self._waiting and self._running < self.config.concurrency:
            state = self._waiting.popleft()
            state.waiting = False
            self._pump(state)  # (an endpoint drained or paused meanwhile takes none)

    def _health(self, state: _EndpointState, outcome: SendOutcome) -> None:
        """Back off endpoints that cannot be reached or time out (they hold connections for long).

        An endpoint that answers, even with an error status, frees its slot at once and costs the
        others nothing: its deliveries just follow the retry schedule.
        """
        if outcome.status == 410 or outcome.disable:
            self._give_back(state)  # the endpoint is being disabled: the rest stay pending
            self._endpoints_read = 0.0  # re-read the enabled endpoints at the next claim
            # Until the disabling commits, the endpoint still reads as enabled: claim and send
            # nothing more to it meanwhile (each further 410 would fail its delivery for good).
            state.gone_until = time.time() + GONE_PAUSE
        if outcome.ok or outcome.status is not None:  # it answered (a broker: it confirmed)
            state.failures, state.paused_until = 0, 0.0
            return
        state.failures += 1
        over = state.failures - self.config.failures_before_backoff
        if over >= 0:
            state.paused_until = time.time() + min(self.config.max_backoff, 0.5 * 2 ** min(over, 10))

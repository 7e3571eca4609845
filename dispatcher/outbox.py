"""Delivering the webhook outbox: claim due rows, send them, record the outcome.

- **Claims** take due rows with FOR UPDATE SKIP LOCKED (locking only the rows they take),
  so several dispatchers share the work. A claim stamps the row with a fresh claim id and leases it by pushing
  `next_attempt_at` past the request timeout; a dispatcher that dies leaves rows that come
  due again when the lease ends. An outcome is written only where the row still carries
  the writer's claim id, so a worker whose lease ran out cannot overwrite a newer attempt.
- **Order**: only the lowest pending sequence of a prediction is claimable, so one
  prediction's webhooks go out one at a time, in sequence order; the same holds per
  account endpoint marked `ordered` (store.outbox CLAIM).
- **Account endpoints** (dispatcher.fanout) are their own unit of caps and breakers (the
  row's `endpoint` is the endpoint id), sign with their own secret, start at most
  `rate_limit` attempts a second (dispatcher.pacing; excess waits in the outbox), and after
  each batch of outcomes their health is updated (dispatcher.health: failing, disabled,
  recovered, announced to the owner's other endpoints and on the event topic).
- **Isolation**: each endpoint (scheme://host:port) has a cap on attempts in flight and a
  circuit breaker (dispatcher.breaker). A claim never takes more rows of an endpoint than
  it has room for, and none of a full or open one, so a slow or dead receiver holds only
  its own slots; an opening breaker also pushes that endpoint's queued rows past its
  cooldown in Postgres, for every dispatcher.
- **Recording** is batched: finished attempts are written (row update plus attempt log) in
  one statement per batch, off the sending path, on asyncpg's own connection (with endpoint
  health, 410 stops and breaker holds in one transaction when the batch has them).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.backoff import Next, after_attempt
from dispatcher.breaker import Breaker, counts_as_failure
from dispatcher.endpointhealth import EndpointHealth
from dispatcher.pacing import RateWindow
from dispatcher.sender import Attempt, Signing, send
from inferhook import metrics, tracing
from inferhook.db import driver_connection, driver_transaction
from inferhook.logs import bind_prediction
from inferhook.resilience import Dependency, PartHealth
from inferhook.settings import WebhookSettings
from inferhook.tracing import TraceParents
from schemas.webhooks import DeliveryState
from store import endpoints, outbox
from store.accounts import webhook_keys

log = logging.getLogger(__name__)

SEQUENCE_HEADER = "inferhook-sequence"
"""The event's sequence within its prediction (also the last part of `webhook-id`)."""
EVENT_HEADER = "inferhook-event-type"
"""The CloudEvents type of the event the webhook reports."""

@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds the lease on."""

    id: int
    claim: str
    webhook_id: str
    prediction_id: str
    owner: str
    url: str
    endpoint: str
    event_type: str
    sequence: int
    body: bytes
    attempts: int
    secret: str | None
    previous_secret: str | None
    signing_key: str | None
    endpoint_id: str = ""
    """The account endpoint it goes to; '' for a prediction's own webhook."""
    rate_limit: int | None = None


@dataclass(frozen=True)
class Outcome:
    """A finished attempt and what it decided."""

    claimed: Claimed
    attempt: Attempt
    next: Next


class Endpoints:
    """In-flight counts and breakers per endpoint, and the room a claim may use."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.cap = settings.endpoint_concurrency
        self.in_flight: dict[str, int] = defaultdict(int)
        self.breakers: dict[str, Breaker] = defaultdict(
            lambda: Breaker(failures=settings.breaker_failures,
                            cooldown=settings.breaker_cooldown))
        self.paces: dict[str, RateWindow] = {}
        """Rate-limited account endpoints: their recent starts."""
        self.waiting: dict[str, int] = defaultdict(int)
        """Claimed attempts of a rate-limited endpoint waiting for their slot."""

    def pace(self, endpoint: str, rate: int | None) -> RateWindow | None:
        """The rate window of an endpoint (made or resized as its claimed rows say)."""
        if rate is None:
            self.paces.pop(endpoint, None)
            return None
        window = self.paces.get(endpoint)
        if window is None or window.rate != rate:
            window = self.paces[endpoint] = RateWindow(rate, window.starts if window else deque())
        return window

    def limits(self, now: float) -> tuple[list[str], list[str], list[int]]:
        """Endpoints with no room, and those with less than the cap (with their room)."""
        blocked, limited, rooms = [], [], []
        for endpoint in [e for e, b in self.breakers.items()
                         if b.consecutive == 0 and not self.in_flight.get(e)]:
            del self.breakers[endpoint]  # idle and healthy: forget it
            self.in_flight.pop(endpoint, None)
        for endpoint in [e for e, w in self.paces.items()
                         if w.room(now) == w.rate and not self.waiting.get(e)]:
            del self.paces[endpoint]  # no start in the last second: nothing to remember
            self.waiting.pop(endpoint, None)
        for endpoint in set(self.in_flight) | set(self.breakers) | set(self.paces):
            room = self.breakers[endpoint].room(self.cap, now) - self.in_flight[endpoint]
            if endpoint in self.paces:
                room = min(room, self.paces[endpoint].room(now) - self.waiting[endpoint])
            if room <= 0:
                blocked.append(endpoint)
            elif room < self.cap:
                limited.append(endpoint)
                rooms.append(room)
        return blocked, limited, rooms


class OutboxWorker:
    """Delivers due webhooks until stopped; `wake()` shortens the wait after new rows."""

    def __init__(self, engine: AsyncEngine, session: aiohttp.ClientSession,
                 settings: WebhookSettings, *, batch: int = 256, poll: float = 0.25,
                 traces: TraceParents | None = None,
                 health: EndpointHealth | None = None) -> None:
        self.engine, self.session, self.settings = engine, session, settings
        self.traces = traces or TraceParents()
        """Where each prediction's trace is found, to continue it in the webhook request."""
        self.batch, self.poll = batch, poll
        self.lease = settings.timeout * 2 + 2
        self.endpoints = Endpoints(settings)
        self.health = health or EndpointHealth(settings)
        self.in_flight = 0
        self.settle = 0.005
        self._kick = asyncio.Event()
        self._freed = asyncio.Event()
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New rows may be due now."""
        self._kick.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until `stop` is set; attempts in flight finish and are recorded."""
        recorder = asyncio.create_task(self._record_loop())
        health = PartHealth("outbox worker", network=Dependency.POSTGRES)
        try:
            while not stop.is_set():
                room = min(self.batch, self.settings.max_in_flight - self.in_flight)
                try:
                    claimed = await self.claim(room) if room > 0 else []
                except Exception as exc:  # Postgres away: leases keep rows safe
                    if health.failed(exc):
                        await health.pause(stop)
                    else:
                        log.exception("claiming webhooks failed; retrying in 1s")
                        await asyncio.sleep(1.0)
                    continue
                if room > 0:
                    health.ok(Dependency.POSTGRES)
                for delivery in claimed:
                    self._start(delivery)
                if room > 0 and len(claimed) == room:
                    continue  # there may be more due right now
                await self._wait()
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.settings.timeout + 1)
            while not self._outcomes.empty():
                await self._flush(self._drain())
            recorder.cancel()
            with suppress(asyncio.CancelledError):
                await recorder
            await self.health.close()

    async def _wait(self) -> None:
        """Until new rows may be due (at once), slots freed up (a moment later), or the poll."""
        self._kick.clear()
        self._freed.clear()
        kicked = asyncio.ensure_future(self._kick.wait())
        freed = asyncio.ensure_future(self._freed.wait())
        try:
            await asyncio.wait([kicked, freed], timeout=self.poll,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            freed.cancel()
        if self._freed.is_set() and not self._kick.is_set():
            # Let more attempts finish, so one claim fills many slots instead of one.
            await asyncio.sleep(self.settle)

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to `limit` due rows, within every endpoint's room."""
        blocked, limited, rooms = self.endpoints.limits(time.monotonic())
        claim = uuid.uuid4().hex
        # One statement, committed on its own, on asyncpg's connection (no BEGIN, COMMIT).
        async with driver_connection(self.engine) as conn:
            rows = await outbox.claim(conn, claim_id=claim, limit=limit, scan=limit * 4,
                                      lease=self.lease, cap=self.endpoints.cap,
                                      blocked=blocked, limited=limited, rooms=rooms)
        return [Claimed(claim=claim, **row) for row in rows]

    def _start(self, delivery: Claimed) -> None:
        self.in_flight += 1
        self.endpoints.in_flight[delivery.endpoint] += 1
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Claimed) -> None:
        bind_prediction(delivery.prediction_id)  # this task's log lines are about it
        try:
            await self._paced(delivery)
            with tracing.tracer().start_as_current_span(
                    f"webhook {delivery.event_type}", kind=SpanKind.CLIENT,
                    context=self.traces.context(delivery.prediction_id),
                    attributes={"inferhook.prediction_id": delivery.prediction_id,
                                "inferhook.webhook_id": delivery.webhook_id}) as span:
                attempt = await send(self.session, delivery.url, await self._signing(delivery),
                                     delivery.webhook_id, delivery.body, self.settings.timeout,
                                     extra_headers={SEQUENCE_HEADER: str(delivery.sequence),
                                                    EVENT_HEADER: delivery.event_type,
                                                    **tracing.http_headers()})
                if attempt.status is not None:
                    span.set_attribute("http.response.status_code", attempt.status)
        except Exception as exc:  # a bug must not leave the lease to run out silently
            log.exception("webhook %s: attempt crashed", delivery.webhook_id)
            attempt = Attempt(datetime.now(UTC), ok=False, status=None,
                              error=f"internal error: {exc!r}"[:500], response="", latency=0.0)
        finally:
            self.in_flight -= 1
            self.endpoints.in_flight[delivery.endpoint] -= 1
        metrics.WEBHOOK_ATTEMPTS.labels(metrics.webhook_outcome(attempt.status)).inc()
        if delivery.endpoint_id:
            metrics.ENDPOINT_ATTEMPTS.labels(delivery.endpoint_id,
                                             metrics.webhook_outcome(attempt.status)).inc()
        metrics.WEBHOOK_LATENCY.observe(attempt.latency)
        next_step = after_attempt(ok=attempt.ok, status=attempt.status,
                                  retry_after=attempt.retry_after, attempts=delivery.attempts,
                                  schedule=self.settings.retry_schedule,
                                  max_retry_after=self.settings.max_retry_after)
        if not attempt.ok:
            log.info("webhook %s attempt %d to %s failed (%s); %s", delivery.webhook_id,
                     delivery.attempts, delivery.endpoint, attempt.error,
                     f"retry in {next_step.delay:.1f}s" if next_step.state is DeliveryState.PENDING
                     else next_step.state.value)
        self._outcomes.put_nowait(Outcome(delivery, attempt, next_step))
        self._freed.set()

    async def _paced(self, delivery: Claimed) -> None:
        """Wait for a slot of the endpoint's rate limit, if it has one: first the shared one
        (Postgres: slots 1/rate s apart over every dispatcher), then this process's window
        (at most `rate` starts in any second of its own clock, whatever the delays)."""
        window = self.endpoints.pace(delivery.endpoint, delivery.rate_limit)
        if window is None or delivery.rate_limit is None:
            return
        loop = asyncio.get_running_loop()
        self.endpoints.waiting[delivery.endpoint] += 1
        try:
            async with driver_connection(self.engine) as conn:  # one statement, committed
                shared = await endpoints.take_slot(conn, delivery.endpoint_id,
                                                   delivery.rate_limit)
            if shared > 0:
                await asyncio.sleep(shared)
            while True:  # others of the endpoint may take the slot first: ask again
                wait = window.delay(loop.time())
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            window.take(loop.time())
        finally:
            self.endpoints.waiting[delivery.endpoint] -= 1

    async def _signing(self, delivery: Claimed) -> Signing:
        if delivery.endpoint_id and delivery.secret is None:
            raise RuntimeError(f"endpoint {delivery.endpoint_id} has no secret (deleted?)")
        if delivery.secret is None or (self.settings.ed25519 and delivery.signing_key is None):
            keys = await webhook_keys(self.engine, delivery.owner, ed25519=self.settings.ed25519)
            return Signing(keys.secrets, keys.signing_key)
        secrets = [delivery.secret] + ([delivery.previous_secret] if delivery.previous_secret
                                       else [])
        return Signing(secrets, delivery.signing_key if self.settings.ed25519 else None)

    def _drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while not self._outcomes.empty() and len(outcomes) < 1000:
            outcomes.append(self._outcomes.get_nowait())
        return outcomes

    async def _record_loop(self) -> None:
        while True:
            first = await self._outcomes.get()
            await self._flush([first, *self._drain()])

    async def _flush(self, outcomes: Sequence[Outcome]) -> None:
        try:
            await self.record(outcomes)
        except Exception:  # the leases run out and the rows are tried again
            log.exception("recording %d webhook outcomes failed", len(outcomes))

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write outcomes (and the attempt log); update breakers; stop gone endpoints."""
        now = time.monotonic()
        holds: dict[str, float] = {}
        for o in outcomes:
            until = self.endpoints.breakers[o.claimed.endpoint].record(
                failed=counts_as_failure(o.attempt.status), now=now)
            if until is not None:
                holds[o.claimed.endpoint] = until
        rows = [{
            "id": o.claimed.id, "claim": o.claimed.claim, "state": o.next.state.value,
            "delay": o.next.delay, "status": o.attempt.status, "error": o.attempt.error,
            "attempt": o.claimed.attempts, "started_at": o.attempt.started_at,
            "latency_ms": round(o.attempt.latency * 1000, 3), "response": o.attempt.response,
            "webhook_id": o.claimed.webhook_id, "prediction_id": o.claimed.prediction_id,
        } for o in outcomes]
        attempted = [(o.claimed.endpoint_id, o.attempt) for o in outcomes if o.claimed.endpoint_id]
        gone = [o.claimed for o in outcomes if o.next.endpoint_gone and not o.claimed.endpoint_id]
        # On asyncpg's connection; RECORD alone (the usual batch) is one statement committed
        # on its own, with no BEGIN and COMMIT round trips.
        alone = not attempted and not gone and not holds
        async with (driver_connection if alone else driver_transaction)(self.engine) as conn:
            locked = await self.health.lock(conn, attempted)
            await outbox.record(conn, rows)
            for claimed in gone:
                await outbox.stop_endpoint(conn, claimed.owner, claimed.url)
            notices = await self.health.observe(conn, attempted, locked)
            for endpoint, until in holds.items():
                wall = datetime.now(UTC).timestamp() + (until - now)
                log.warning("circuit open for %s for %.0fs", endpoint, until - now)
                await outbox.hold_endpoint(conn, endpoint, datetime.fromtimestamp(wall, UTC))
        await self.health.publish(notices)

"""The executor's Kafka side, for one connection: poll the request topics, hold a bounded
prefetch of each, start the held requests in the order executors.scheduling decides,
dead-letter what cannot be decoded, commit, report the queue depth, drain on rebalance and
on stop. How a request is served is not decided here (serving.py).

Each model's three request topics (one per priority) are read at once; a topic's partitions
pause while it holds `max_in_flight` records (or `max_in_flight_mb`), so a backlog of one
priority never stops the others from being read. Over all topics, the records held are
capped at `prefetch_max_bytes`: once a record takes the total to the cap, the records
fetched after it are given back (their partitions seek back to them) and every topic
pauses until the total is below the cap again, so an executor serving many models holds
at most the cap plus one record. The records of a fetch are taken interactive topics
first, so at the cap the room goes to the most urgent. Held records wait in the scheduler; a
model gets its next one when fewer than its `max_batch` requests are running, so what runs
next is chosen when the batch before it ends, not when a record is read. Held records
that were not started when partitions are revoked (or on stop) are dropped: their offsets
were never done, so the commit stays below them and they are read again.

Delivery is at least once: a request's offset is committed only after its outcome event
is durable in Kafka (records finish out of order; executors.offsets keeps the commit
behind the oldest unfinished one). A dead letter counts as an outcome: once it is durable
the offset is done like any other. When the outcome of a request could not be made
durable because Kafka went away, its offset stays uncommitted and `run` raises that error
once the in-flight work has drained and what finished is committed: the executor then
starts the connection over, and the request runs again from the group's committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from executors.deadletter import UNDECODABLE, dead_letter
from executors.offsets import OffsetTracker
from executors.scheduling import Scheduler
from inferhook import metrics
from inferhook.kafka import create_consumer
from inferhook.resilience import outage
from inferhook.settings import Settings
from schemas.events import Created, DecodeError, PredictionEvent
from schemas.priority import Priority
from schemas.topics import Topics

log = logging.getLogger(__name__)

COMMIT_TIMEOUT = 10.0
"""Seconds one offset commit may take (aiokafka retries one until Kafka is back); a commit
that times out is tried again on the next loop."""
MAX_POLL_RECORDS = 64
COMMIT_EVERY = 0.5
"""Seconds between offset commits while consuming: a commit per finished request was a
request to the group coordinator and a write to __consumer_offsets each. A crash re-runs
what finished since the last commit (at least once; the read model keeps one outcome);
rebalances and shutdown commit at once."""

Record: TypeAlias = ConsumerRecord[bytes, bytes]
ServeRequest = Callable[[AIOKafkaProducer, Record, PredictionEvent, Created, Callable[[], None]],
                       Awaitable[None]]
"""Serves one decoded request with the connection's producer; calls the callback once the
request has ended (so the next one may start) and returns once its outcome is durable, or
raises the KafkaError that kept it from becoming durable."""


@dataclass
class Held:
    """A decoded request record waiting in the scheduler, then running."""

    tp: TopicPartition
    record: Record
    event: PredictionEvent
    created: Created
    model: str
    """The model of the record's topic (the window it runs in)."""
    ended: bool = False
    """Its run ended (or never started): its model's window has room again."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move away, give their in-flight work a moment and commit it."""

    def __init__(self, consumer: RequestConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.consumer.drain(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("executor %s assigned %s", self.consumer.source,
                 ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing")
        self.consumer.assigned.set()


class RequestConsumer:
    """Consumes the request topics of `models` in the executors' group for one connection
    to Kafka, handing each decoded request to `serve`.

    `assigned` is set once the group gave this member its partitions.
    """

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, serve: ServeRequest, *,
                 models: list[str], source: str, assigned: asyncio.Event,
                 windows: dict[str, int] | None = None) -> None:
        self.settings, self.producer, self.serve = settings, producer, serve
        self.topics = Topics(settings.kafka.topic_prefix)
        self.models = {topic: (name, priority) for name in models
                       for topic, priority in self.topics.all_requests(name).items()}
        """The model and priority of each request topic."""
        self.windows = dict.fromkeys(models, 1) | (windows or {})
        """Requests of a model that may run at once (its max_batch): the rest wait, held."""
        self.source, self.assigned = source, assigned
        self.tracker = OffsetTracker()
        self.scheduler: Scheduler[Held] = Scheduler()
        self._running: Counter[str] = Counter()
        """Requests started per model whose run has not ended."""
        self._held: Counter[str] = Counter()
        """Records taken per topic and not done (held or running)."""
        self._held_bytes: Counter[str] = Counter()
        self.held_bytes = 0
        """Bytes of the records held now (prefetched or running), over all topics."""
        self.peak_held_bytes = 0
        """The most bytes held at once since start (what `prefetch_max_bytes` bounds)."""
        self._dispatching = False
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self._lost: KafkaError | None = None
        """Why an outcome did not become durable (Kafka away): the connection starts over."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` (the in-flight work drains, bounded, and is committed), or
        raise once Kafka went away (after the same drain)."""
        session_timeout_ms = self.settings.executor.session_timeout_ms
        self._consumer = consumer = create_consumer(
            self.settings.kafka, client_id="inferhook-executor",
            group_id=self.topics.executors_group, max_poll_records=MAX_POLL_RECORDS,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 4))
        # Pooled or not, the catalog is read once at start, so the topics are known: a
        # pattern would also take requests of models this executor was told not to serve.
        consumer.subscribe(list(self.models), listener=_Rebalance(self))
        try:
            await consumer.start()
            await self._poll(consumer, stop)
        finally:
            await self._settle_all()
            await consumer.stop()

    async def _poll(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        refreshed = committed = -math.inf
        while not stop.is_set():
            if self._lost is not None:
                raise self._lost
            if time.monotonic() - refreshed >= self.settings.metrics.refresh_seconds:
                refreshed = time.monotonic()
                await self._report_lag(consumer)
            self._throttle(consumer)
            self._take_all(consumer, await consumer.getmany(timeout_ms=100))
            self._dispatch()
            if time.monotonic() - committed >= COMMIT_EVERY:
                committed = time.monotonic()
                await self._commit()

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        """Pause the partitions of topics holding their limit (all of them at the cap over
        all topics); resume the others."""
        limit = self.settings.executor.max_in_flight
        limit_bytes = self.settings.executor.max_in_flight_mb * 2**20
        full = {tp for tp in consumer.assignment()
                if self._capped() or self._held[tp.topic] >= limit
                or self._held_bytes[tp.topic] >= limit_bytes}
        paused = consumer.paused()
        if full - paused:
            consumer.pause(*(full - paused))
        if paused - full:
            consumer.resume(*(paused - full))

    def _capped(self) -> bool:
        """True while the records held reach the cap over all topics."""
        cap = self.settings.executor.prefetch_max_bytes
        return cap > 0 and self.held_bytes >= cap

    def _take_all(self, consumer: AIOKafkaConsumer,
                  batches: dict[TopicPartition, list[Record]]) -> None:
        """Take a fetch's records, interactive topics first, until the cap is reached; give
        back the rest (their partitions read them again once below the cap)."""
        urgency = list(Priority)
        for tp in sorted(batches, key=lambda tp: urgency.index(self._priority(tp))):
            for record in batches[tp]:
                if self._capped():
                    consumer.seek(tp, record.offset)
                    break
                self._take(tp, record)

    def _priority(self, tp: TopicPartition) -> Priority:
        return self.models.get(tp.topic, ("", Priority.DEFAULT))[1]

    def _take(self, tp: TopicPartition, record: Record) -> None:
        """Hold a record in the scheduler, or dead-letter it at once if it cannot be decoded."""
        self.tracker.begin(tp, record.offset)
        self._held[tp.topic] += 1
        self._held_bytes[tp.topic] += len(record.value or b"")
        self.held_bytes += len(record.value or b"")
        self.peak_held_bytes = max(self.peak_held_bytes, self.held_bytes)
        try:
            event, created = _request_of(record)
        except DecodeError as exc:
            self._spawn(self._handle(tp, record, self._dead_letter(record, str(exc))), tp)
            return
        model, priority = self.models.get(tp.topic, (created.model, Priority.DEFAULT))
        self.scheduler.push(model, priority, created.owner,
                            Held(tp, record, event, created, model))

    def _dispatch(self) -> None:
        """Start held requests of every model whose window has room, in scheduler order."""
        for model in self.scheduler.models:
            while self._running[model] < self.windows.get(model, 1):
                held = self.scheduler.pop(model)
                if held is None:
                    break
                self._running[model] += 1
                self._spawn(self._handle(held.tp, held.record, self._serve(held)), held.tp)

    def _ended(self, held: Held) -> None:
        """A request's run ended: its model has room; start the next soon (not from inside
        the batcher's callback that told us)."""
        if held.ended:
            return
        held.ended = True
        self._running[held.model] -= 1
        if not self._dispatching:
            self._dispatching = True
            asyncio.get_running_loop().call_soon(self._dispatch_soon)

    def _dispatch_soon(self) -> None:
        self._dispatching = False
        self._dispatch()

    async def _serve(self, held: Held) -> None:
        try:
            await self.serve(self.producer, held.record, held.event, held.created,
                             lambda: self._ended(held))
        finally:
            self._ended(held)

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for topic, lag in (await metrics.consumer_lag(consumer, topics=self.models)).items():
            model, priority = self.models[topic]
            metrics.QUEUE_DEPTH.labels(model, priority.value).set(lag)

    async def _commit(self) -> None:
        offsets = self.tracker.commits()
        if not offsets or self._consumer is None:
            return
        owned = self._consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), timeout=COMMIT_TIMEOUT)
            self.tracker.committed(offsets)
        except (CommitFailedError, IllegalStateError) as exc:  # lost the partitions meanwhile
            log.warning("commit of %s failed: %s", offsets, exc)
        except (KafkaError, TimeoutError) as exc:  # Kafka away: the next loop tries again
            log.warning("commit of %s failed (%r); will retry", offsets, exc)

    async def drain(self, partitions: set[TopicPartition] | None) -> None:
        """Drop the held requests of `partitions` (None: all) that have not started, wait
        (bounded) for those running, then commit (below the dropped ones)."""
        for held in self.scheduler.remove(lambda h: partitions is None or h.tp in partitions):
            self._release(held.tp, held.record)
        pending = [task for task, tp in self._tasks.items() if partitions is None or tp in partitions]
        if pending:
            log.info("draining %d in-flight requests", len(pending))
            await asyncio.wait(pending, timeout=self.settings.executor.drain_seconds)
        await self._commit()
        if partitions is not None:
            self.tracker.forget(partitions)

    async def _settle_all(self) -> None:
        """Let in-flight work finish (bounded) and commit it; what is left runs again later."""
        await self.drain(None)
        leftover = list(self._tasks)
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], tp: TopicPartition) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = tp
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _handle(self, tp: TopicPartition, record: Record,
                      settle: Coroutine[Any, Any, None]) -> None:
        """Serve or dead-letter one record (`settle`), then mark its offset done: every
        path but one ends there. The exception: Kafka went away before the outcome was
        durable; the offset stays uncommitted and the connection starts over, so the
        request runs again."""
        durable = True
        try:
            await settle
        except KafkaError as exc:
            if outage(exc) is not None:
                durable = False
                self._lost = self._lost or exc
                log.warning("request %s@%d not finished (%r); it runs again once Kafka is back",
                            record.topic, record.offset, exc)
            else:
                log.exception("request %s@%d could not be finished", record.topic, record.offset)
        except Exception:
            log.exception("request %s@%d crashed its handler", record.topic, record.offset)
        self._release(tp, record)
        if durable:
            self.tracker.done(tp, record.offset)

    def _release(self, tp: TopicPartition, record: Record) -> None:
        """The record no longer counts against its topic's prefetch."""
        self._held[tp.topic] -= 1
        self._held_bytes[tp.topic] -= len(record.value or b"")
        self.held_bytes -= len(record.value or b"")

    async def _dead_letter(self, record: Record, reason: str) -> None:
        await dead_letter(self.producer, self.topics.dead_letter, record, reason=UNDECODABLE,
                          error=reason)


def _request_of(record: Record) -> tuple[PredictionEvent, Created]:
    """The `created` event a request record holds, and its data; DecodeError when it holds
    anything else."""
    event = PredictionEvent.decode(record.headers, record.value)
    if not isinstance(event.data, Created):
        raise DecodeError(f"expected a created event, got {event.type.value}")
    return event, event.data

"""The executor's Kafka side, for one connection: poll the request topics, pause while too
much is in flight, dead-letter what cannot be decoded, commit, report the queue depth,
drain on rebalance and on stop. How a request is served is not decided here (serving.py).

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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from executors.deadletter import UNDECODABLE, dead_letter
from executors.offsets import OffsetTracker
from inferhook import metrics
from inferhook.kafka import create_consumer
from inferhook.resilience import outage
from inferhook.settings import Settings
from schemas.events import Created, DecodeError, PredictionEvent
from schemas.topics import Topics

log = logging.getLogger(__name__)

COMMIT_TIMEOUT = 10.0
"""Seconds one offset commit may take (aiokafka retries one until Kafka is back); a commit
that times out is tried again on the next loop."""
MAX_POLL_RECORDS = 64

Record: TypeAlias = ConsumerRecord[bytes, bytes]
ServeRequest = Callable[[AIOKafkaProducer, Record, PredictionEvent, Created], Awaitable[None]]
"""Serves one decoded request with the connection's producer; returns once its outcome is
durable, raises the KafkaError that kept it from becoming durable."""


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
                 models: list[str], source: str, assigned: asyncio.Event) -> None:
        self.settings, self.producer, self.serve = settings, producer, serve
        self.topics = Topics(settings.kafka.topic_prefix)
        self.models = {self.topics.requests(name): name for name in models}
        """The model of each request topic."""
        self.source, self.assigned = source, assigned
        self.tracker = OffsetTracker()
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
        paused = False
        limit = self.settings.executor.max_in_flight
        refreshed = -math.inf
        while not stop.is_set():
            if self._lost is not None:
                raise self._lost
            if time.monotonic() - refreshed >= self.settings.metrics.refresh_seconds:
                refreshed = time.monotonic()
                await self._report_lag(consumer)
            if self.tracker.in_flight >= limit and not paused:
                consumer.pause(*consumer.assignment())
                paused = True
            elif self.tracker.in_flight < limit and paused:
                consumer.resume(*consumer.assignment())
                paused = False
            batches = await consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                for record in records:
                    self.tracker.begin(tp, record.offset)
                    self._spawn(self._handle(tp, record), tp)
            await self._commit()

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for topic, lag in (await metrics.consumer_lag(consumer, topics=self.models)).items():
            metrics.QUEUE_DEPTH.labels(self.models[topic]).set(lag)

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
        """Wait (bounded) for in-flight work on `partitions` (None: all), then commit."""
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

    async def _handle(self, tp: TopicPartition, record: Record) -> None:
        """Serve or dead-letter one record, then mark its offset done: every path but one
        ends there. The exception: Kafka went away before the outcome was durable; the
        offset stays uncommitted and the connection starts over, so the request runs again."""
        durable = True
        try:
            await self._settle(record)
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
        if durable:
            self.tracker.done(tp, record.offset)

    async def _settle(self, record: Record) -> None:
        """Serve the request, or dead-letter it when it cannot be decoded; return once the
        outcome (or the dead letter) is durable."""
        try:
            event, created = _request_of(record)
        except DecodeError as exc:
            await self._dead_letter(record, str(exc))
        else:
            await self.serve(self.producer, record, event, created)

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

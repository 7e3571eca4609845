"""The projector's Kafka consumer: read_committed batches, offsets kept in Postgres.

Postgres holds the authoritative offsets (written in each batch's transaction); on every
assignment the consumer seeks to them, or to the beginning of a partition Postgres has
never seen. Offsets are also committed to Kafka, about once a second, only so that lag
shows in the usual tools.

When Postgres or Kafka goes away, `project_events` raises; the dispatcher runs it again
(inferhook.resilience.retrying) with a new consumer, which seeks to the stored offsets
again. A batch is applied in one transaction with its offsets, so a batch whose
transaction failed is simply read again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

import store.offsets
from dispatcher.projector import project_batch
from inferhook.db import driver_transaction
from inferhook.filelinks import FileLinks
from inferhook.kafka import create_consumer
from inferhook.metrics import PREDICTIONS_COMPLETED, PROJECTION_LAG, consumer_lag
from inferhook.settings import Settings
from inferhook.tracing import TraceParents
from schemas.endpoints import is_endpoint_event
from schemas.events import DecodeError, PredictionEvent
from schemas.topics import Topics
from store.files import PostgresFiles

log = logging.getLogger(__name__)

MAX_BATCH = 2000
"""Events applied per Postgres transaction at most."""
KAFKA_COMMIT_EVERY = 1.0
"""Seconds between the informational Kafka offset commits."""
KAFKA_COMMIT_TIMEOUT = 5.0
"""Seconds an informational commit may take (aiokafka retries one until Kafka is back)."""


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue each partition from the offset Postgres stored with it."""

    def __init__(self, consumer: AIOKafkaConsumer, engine: AsyncEngine, topic: str) -> None:
        self.consumer, self.engine, self.topic = consumer, engine, topic
        self.generation = 0
        """Bumped on every rebalance: batches read before it are dropped, not applied."""
        self.failure: Exception | None = None
        """Why the last assignment could not seek (Postgres away): the positions are not
        Postgres's, so nothing read may be applied; the projector raises it and starts over."""

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Drop what was read ahead; each applied batch stored its offsets with its effects."""
        self.generation += 1

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Seek every assigned partition to its stored offset (or to its beginning)."""
        self.generation += 1
        mine = [tp for tp in assigned if tp.topic == self.topic]
        try:
            async with self.engine.connect() as conn:
                stored = await store.offsets.load(conn, self.topic, [tp.partition for tp in mine])
        except Exception as exc:  # aiokafka would only log it and read from the wrong offsets
            self.failure = exc
            return
        fresh = []
        for tp in mine:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition])
            else:
                fresh.append(tp)
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)
        log.info("projecting %s from %s", self.topic,
                 ", ".join(f"{tp.partition}@{stored.get(tp.partition, 0)}" for tp in mine))


Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass
class Batch:
    """Decoded events in partition order, their raw data, and each partition's next offset."""

    events: list[PredictionEvent] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def decode_batch(batches: Records, traces: TraceParents | None = None) -> Batch:
    """The batch to project; undecodable records are skipped (their offsets still advance).

    `traces` remembers each event's `traceparent` for the webhook it may call for.
    """
    batch = Batch()
    for tp, records in batches.items():
        for record in records:
            try:
                event = PredictionEvent.decode(record.headers, record.value)
                batch.events.append(event)
                batch.raw.append(record.value or b"")
                if traces is not None:
                    traces.remember(event.subject, record.headers)
            except DecodeError as exc:
                if not is_endpoint_event(record.headers):  # those are for outside readers
                    log.warning("skipping undecodable event %s:%d@%d: %s", tp.topic,
                                tp.partition, record.offset, exc)
        batch.offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
    return batch


async def project_events(settings: Settings, engine: AsyncEngine, stop: asyncio.Event, *,
                         on_batch: Callable[[], None] = lambda: None,
                         traces: TraceParents | None = None) -> None:
    """Consume inferhook.events and project it until `stop` is set.

    Fetching and decoding the next batch overlaps with Postgres applying the current one
    (one batch ahead at most); a rebalance drops the batch read ahead, since the new
    assignment seeks from what Postgres holds anyway.
    """
    topic = Topics(settings.kafka.topic_prefix).events
    consumer = create_consumer(settings.kafka, client_id="inferhook-dispatcher",
                               group_id=Topics(settings.kafka.topic_prefix).dispatcher_group,
                               max_poll_records=MAX_BATCH)
    listener = SeekToStoredOffsets(consumer, engine, topic)
    files, links = PostgresFiles(), FileLinks(settings.base_url, settings.file_link_secret)
    consumer.subscribe([topic], listener=listener)
    await consumer.start()
    ahead: asyncio.Queue[tuple[int, Batch]] = asyncio.Queue(maxsize=1)
    fetcher = asyncio.create_task(_fetch(consumer, listener, ahead, stop, traces))
    pending: dict[TopicPartition, int] = {}
    last_commit = time.monotonic()
    lag = _LagReport(settings.metrics.refresh_seconds)
    try:
        while not stop.is_set():
            with suppress(TimeoutError):
                generation, batch = await asyncio.wait_for(ahead.get(), timeout=0.2)
                if listener.failure is not None:
                    raise listener.failure
                if generation == listener.generation:
                    async with driver_transaction(engine) as conn:
                        applied = await project_batch(
                            conn, batch.events, batch.offsets, raw=batch.raw, files=files,
                            links=links, progress_interval=settings.webhook.progress_interval,
                            max_payload=settings.webhook.max_payload_bytes)
                    on_batch()
                    for model, status in applied.completed:
                        PREDICTIONS_COMPLETED.labels(model, status).inc()
                    done = {TopicPartition(t, p): o for (t, p), o in batch.offsets.items()}
                    pending.update(done)
                    lag.applied(generation, done)
            if listener.failure is not None:
                raise listener.failure
            await lag.maybe_report(consumer, topic, listener.generation)
            if fetcher.done():
                fetcher.result()  # raise what stopped it
            if pending and time.monotonic() - last_commit >= KAFKA_COMMIT_EVERY:
                pending, last_commit = await _commit(consumer, pending), time.monotonic()
    finally:
        fetcher.cancel()
        with suppress(asyncio.CancelledError):
            await fetcher
        if pending:
            await _commit(consumer, pending)
        await consumer.stop()


async def _fetch(consumer: AIOKafkaConsumer, listener: SeekToStoredOffsets,
                 ahead: asyncio.Queue[tuple[int, Batch]], stop: asyncio.Event,
                 traces: TraceParents | None) -> None:
    while not stop.is_set():
        records = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
        if records:
            generation = listener.generation
            await ahead.put((generation, decode_batch(records, traces)))


class _LagReport:
    """Sets the projection-lag gauge every `interval` seconds: high-water mark minus applied."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.generation = -1
        self.offsets: dict[TopicPartition, int] = {}
        self.last = -math.inf

    def applied(self, generation: int, offsets: dict[TopicPartition, int]) -> None:
        """A batch read in `generation` was applied up to `offsets`."""
        if generation != self.generation:  # partitions moved: older offsets may be stale
            self.generation, self.offsets = generation, {}
        self.offsets.update(offsets)

    async def maybe_report(self, consumer: AIOKafkaConsumer, topic: str, generation: int) -> None:
        """Refresh the gauge if it is time (partitions not applied since a rebalance count
        from the consumer's position)."""
        if time.monotonic() - self.last < self.interval:
            return
        self.last = time.monotonic()
        applied = self.offsets if generation == self.generation else {}
        lag = await consumer_lag(consumer, applied=applied, topics=[topic])
        PROJECTION_LAG.set(lag[topic])


async def _commit(consumer: AIOKafkaConsumer,
                  offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Commit for visibility only; a failure (e.g. during a rebalance) loses nothing."""
    owned = consumer.assignment()
    try:
        await asyncio.wait_for(consumer.commit({tp: o for tp, o in offsets.items() if tp in owned}),
                               timeout=KAFKA_COMMIT_TIMEOUT)
    except (KafkaError, TimeoutError) as exc:
        log.info("informational offset commit failed: %r", exc)
    return {}

"""Helpers for executor tests: write requests as ingest does, read the events topic back.

These talk to the real Kafka of the test session; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any

import uuid_utils
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from executors.worker import Executor
from inferhook.kafka import create_producer, ensure_topics, publish
from inferhook.settings import Settings
from schemas.events import (
    CREATED_SEQUENCE,
    CancelRequested,
    Created,
    EventType,
    PredictionEvent,
    utcnow,
)
from schemas.priority import Priority
from schemas.topics import Topics

TERMINAL_TYPES = {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELED}


class Requests:
    """Writes `created` events (events topic and request topic) and cancel requests."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings, self.producer = settings, producer
        self.topics = Topics(settings.kafka.topic_prefix)

    async def create(self, model: str, input: dict[str, Any], *, webhook: str | None = None,
                     deadline: datetime | None = None, created_at: datetime | None = None,
                     owner: str = "alice", priority: Priority = Priority.DEFAULT) -> str:
        """Submit a prediction the way ingest does; return its id."""
        prediction_id = str(uuid_utils.uuid7())
        created = Created(owner=owner, model=model, input=input, webhook=webhook,
                          created_at=created_at or utcnow(), deadline=deadline, priority=priority)
        event = PredictionEvent(id=f"{prediction_id}-0", source="tests", type=EventType.CREATED,
                                time=utcnow(), subject=prediction_id, sequence=CREATED_SEQUENCE,
                                data=created)
        await publish(self.producer, self.topics.events, event)
        await publish(self.producer, self.topics.requests(model, priority), event)
        return prediction_id

    async def cancel(self, prediction_id: str) -> None:
        """Publish a cancel request on the control topic (what ingest's cancel does)."""
        event = PredictionEvent(id=f"{prediction_id}-cancel", source="tests",
                                type=EventType.CANCEL_REQUESTED, time=utcnow(),
                                subject=prediction_id, sequence=0,
                                data=CancelRequested(requested_at=utcnow()))
        await publish(self.producer, self.topics.control, event)

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, models: list[str]) -> AsyncIterator[Requests]:
        """A producer, with the topics of `models` created."""
        topics = Topics(settings.kafka.topic_prefix)
        await ensure_topics(settings.kafka, [topics.events, topics.control, topics.dead_letter,
                                             *(t for m in models for t in topics.all_requests(m))])
        producer = create_producer(settings.kafka, client_id="tests")
        await producer.start()
        try:
            yield cls(settings, producer)
        finally:
            await producer.stop()


class EventLog:
    """Every event of a topic from its start, grouped by prediction, followed live."""

    def __init__(self) -> None:
        self.by_id: dict[str, list[PredictionEvent]] = defaultdict(list)
        self.raw: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
        self._changed = asyncio.Event()

    def of(self, prediction_id: str) -> list[PredictionEvent]:
        """Events of one prediction written by executors (not `created`), in arrival order."""
        return [e for e in self.by_id.get(prediction_id, []) if e.type is not EventType.CREATED]

    def terminal(self, prediction_id: str) -> list[PredictionEvent]:
        """The outcome events of one prediction."""
        return [e for e in self.of(prediction_id) if e.type in TERMINAL_TYPES]

    async def wait_until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until `check()` holds; TimeoutError after `timeout` seconds."""
        end = time.monotonic() + timeout
        while not check():
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the events never showed what the test waited for")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def outcome(self, prediction_id: str, timeout: float = 30.0) -> PredictionEvent:
        """The first outcome event of a prediction (waits for it)."""
        await self.wait_until(lambda: bool(self.terminal(prediction_id)), timeout)
        return self.terminal(prediction_id)[0]

    @classmethod
    @asynccontextmanager
    async def follow(cls, settings: Settings, topic: str | None = None,
                     decode: bool = True) -> AsyncIterator[EventLog]:
        """Read `topic` (default: the events topic) from the beginning while the block runs."""
        name = topic or Topics(settings.kafka.topic_prefix).events
        await ensure_topics(settings.kafka, [name])
        consumer = AIOKafkaConsumer(name, bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        log = cls()
        try:
            async def pump() -> None:
                while True:
                    batches = await consumer.getmany(timeout_ms=100)
                    for records in batches.values():
                        for record in records:
                            headers = list(record.headers)
                            log.raw.append((record.value, headers))
                            if decode:
                                event = PredictionEvent.decode(headers, record.value)
                                log.by_id[event.subject].append(event)
                    if batches:
                        log._changed.set()

            task = asyncio.create_task(pump())
            try:
                yield log
            finally:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        finally:
            await consumer.stop()


@asynccontextmanager
async def running(executor: Executor) -> AsyncIterator[Executor]:
    """Run an in-process executor for the block; stop it (draining) afterwards."""
    stop = asyncio.Event()
    task = asyncio.create_task(executor.run(stop))
    try:
        await _until_assigned(executor, task)
        yield executor
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def _until_assigned(executor: Executor, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(executor.assigned.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
    if waiter not in done:
        waiter.cancel()
        raise TimeoutError("the executor never got its partitions")

"""Synthetic prediction events written straight to Kafka (fixtures for the executor and
projection benchmarks), made with the same schemas the services use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import uuid_utils
from aiokafka import AIOKafkaProducer

from inferhook.kafka import ensure_topics
from inferhook.settings import KafkaSettings
from schemas.events import (
    CREATED_SEQUENCE,
    Completed,
    Created,
    EventData,
    EventType,
    PredictionEvent,
    Started,
    event_id,
    utcnow,
)

SOURCE = "inferhook/bench"


def event(prediction_id: str, sequence: int, event_type: EventType,
          data: EventData) -> PredictionEvent:
    """One event as ingest or an executor would write it."""
    return PredictionEvent(id=event_id(prediction_id, sequence), source=SOURCE, type=event_type,
                           time=utcnow(), subject=prediction_id, sequence=sequence, data=data)


def created(owner: str, model: str, payload: dict[str, Any],
            at: datetime | None = None) -> PredictionEvent:
    """A `created` event for a fresh prediction id."""
    prediction_id = str(uuid_utils.uuid7())
    return event(prediction_id, CREATED_SEQUENCE, EventType.CREATED,
                 Created(owner=owner, model=model, input=payload, created_at=at or utcnow()))


def lifecycle(owner: str, model: str, payload: dict[str, Any], output: Any,
              count: int) -> Iterator[PredictionEvent]:
    """`count` predictions, each as created → started → succeeded."""
    for _ in range(count):
        at = utcnow()
        first = created(owner, model, payload, at)
        yield first
        yield event(first.subject, 1, EventType.STARTED,
                    Started(started_at=at + timedelta(milliseconds=1)))
        yield event(first.subject, 2, EventType.SUCCEEDED, Completed(
            completed_at=at + timedelta(milliseconds=2), output=output,
            metrics={"queue_time": 0.001, "predict_time": 0.001, "total_time": 0.002}))


async def produce(settings: KafkaSettings, topic: str, events: Iterable[PredictionEvent],
                  chunk: int = 2000) -> int:
    """Write the events to `topic` (created if missing), `chunk` in flight at a time."""
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                linger_ms=20, max_batch_size=512 * 1024,
                                enable_idempotence=True)
    await producer.start()
    count = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for item in events:
            pending.append(await producer.send(topic, item.value(), key=item.key(),
                                               headers=item.headers()))
            count += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count

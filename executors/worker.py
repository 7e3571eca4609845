"""The executor loop: consume request topics, run the model, emit lifecycle events, commit.

Delivery is at least once: offsets are committed only after the outcome events are
durable in Kafka. An executor killed mid-run leaves the request to the next member of
the group; the re-run numbers its events from 1 again, so the read model keeps one
outcome (see schemas.events).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from executors.errors import PredictionFailed
from executors.runtime import LoadedModel
from inferhook.catalog import load_catalog
from inferhook.kafka import create_producer, ensure_topics, publish
from inferhook.settings import Settings
from schemas.events import (
    Completed,
    Created,
    DecodeError,
    EventData,
    EventType,
    PredictionError,
    PredictionEvent,
    Started,
    utcnow,
)
from schemas.status import FailureReason
from schemas.topics import Topics

log = logging.getLogger(__name__)
SOURCE = f"inferhook/executor/{socket.gethostname()}/{os.getpid()}"


class PredictionRun:
    """Emits the events of one run of one prediction, numbering them from 1."""

    def __init__(self, producer: AIOKafkaProducer, topics: Topics, prediction_id: str) -> None:
        self.producer, self.topics, self.prediction_id = producer, topics, prediction_id
        self.sequence = 0

    async def emit(self, event_type: EventType, data: EventData) -> None:
        self.sequence += 1
        event = PredictionEvent(
            id=f"{self.prediction_id}-{self.sequence}", source=SOURCE, type=event_type,
            time=utcnow(), subject=self.prediction_id, sequence=self.sequence, data=data)
        await publish(self.producer, self.topics.events, event)


class Executor:
    """Serves a set of loaded models from their request topics until stopped."""

    def __init__(self, settings: Settings, models: dict[str, LoadedModel]) -> None:
        self.settings = settings
        self.models = models
        self.topics = Topics(settings.kafka.topic_prefix)
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                       thread_name_prefix="ort")

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, run and commit until `stop` is set; in-flight work finishes first."""
        request_topics = [self.topics.requests(name) for name in self.models]
        await ensure_topics(self.settings.kafka, [self.topics.events, *request_topics])
        producer = create_producer(self.settings.kafka, client_id="inferhook-executor")
        consumer = AIOKafkaConsumer(
            *request_topics, bootstrap_servers=self.settings.kafka.bootstrap,
            group_id=f"{self.topics.prefix}.executors", client_id="inferhook-executor",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", max_poll_records=64,
        )
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info("executor serving %s", ", ".join(self.models))
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    for tp, records in batches.items():
                        await asyncio.gather(*(self.handle(producer, r) for r in records))
                        await consumer.commit({tp: records[-1].offset + 1})
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def handle(self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes]) -> None:
        """Run one request record to its terminal event."""
        try:
            event = PredictionEvent.decode(record.headers, record.value)
            if not isinstance(event.data, Created):
                raise DecodeError(f"expected a created event, got {event.type.value}")
        except DecodeError as exc:
            log.warning("dead-lettering %s@%d: %s", record.topic, record.offset, exc)
            await producer.send_and_wait(
                self.topics.dead_letter, record.value, key=record.key,
                headers=[*record.headers, ("inferhook_error", str(exc).encode()),
                         ("inferhook_topic", record.topic.encode())])
            return
        created = event.data
        model = self.models[created.model]
        run = PredictionRun(producer, self.topics, event.subject)
        started_at = utcnow()
        await run.emit(EventType.STARTED, Started(started_at=started_at))
        metrics: dict[str, float] = {
            "queue_time": (started_at - created.created_at).total_seconds()}
        clock = time.perf_counter()
        try:
            output: Any = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self.pool, model.predict, created.input),
                timeout=model.entry.manifest.max_run_seconds)
        except PredictionFailed as failure:
            await self._finish(run, metrics, clock, EventType.FAILED,
                               error=PredictionError(reason=failure.reason, message=failure.message))
        except TimeoutError:
            await self._finish(run, metrics, clock, EventType.FAILED, error=PredictionError(
                reason=FailureReason.TIMED_OUT,
                message=f"ran longer than {model.entry.manifest.max_run_seconds:g}s"))
        else:
            await self._finish(run, metrics, clock, EventType.SUCCEEDED, output=output)

    async def _finish(self, run: PredictionRun, metrics: dict[str, float], clock: float,
                      event_type: EventType, *, output: Any = None,
                      error: PredictionError | None = None) -> None:
        completed_at = utcnow()
        metrics["predict_time"] = time.perf_counter() - clock
        metrics["total_time"] = metrics["queue_time"] + metrics["predict_time"]
        await run.emit(event_type, Completed(completed_at=completed_at, output=output,
                                             error=error, metrics=metrics))
        log.info("prediction %s %s in %.3fs", run.prediction_id, event_type.status,
                 metrics["predict_time"])


def load_models(settings: Settings, names: list[str]) -> dict[str, LoadedModel]:
    """Load the named models (blocking); intra-op threads split the cores between them."""
    catalog = load_catalog(settings.models_dir)
    unknown = sorted(set(names) - set(catalog))
    if unknown:
        raise ValueError(f"unknown models: {', '.join(unknown)}")
    chosen = names or list(catalog)
    threads = max(1, (os.cpu_count() or 2) // max(1, len(chosen)))
    return {name: LoadedModel.load(catalog[name], intra_op_threads=threads) for name in chosen}



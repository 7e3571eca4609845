"""The control topic, read in full by every executor: cancel requests; and, by a second
listener of the same kind, the attempts topic (executors.attempts).

Each executor reads every partition with a consumer of its own (no group), starting a
window back in time so that a cancel written just before it started is still honoured,
and remembers a bounded number of canceled prediction ids. When Kafka goes away, the
consumer starts over where it had read up to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from executors.attempts import Attempts
from inferhook.kafka import create_consumer
from inferhook.resilience import Dependency, retrying
from inferhook.settings import Settings
from schemas.events import (
    AttemptStarted,
    CancelRequested,
    DecodeError,
    EventType,
    PredictionEvent,
)
from schemas.status import FailureReason
from schemas.topics import Topics

log = logging.getLogger(__name__)

CancelHandler = Callable[[str, FailureReason], None]


class CanceledIds:
    """A bounded set of canceled prediction ids (oldest forgotten first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, FailureReason] = OrderedDict()

    def add(self, prediction_id: str, reason: FailureReason) -> None:
        """Remember one id."""
        self._ids[prediction_id] = reason
        self._ids.move_to_end(prediction_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def get(self, prediction_id: str) -> FailureReason | None:
        """Why the prediction was canceled, or None when it was not."""
        return self._ids.get(prediction_id)

    def __len__(self) -> int:
        return len(self._ids)


class ControlListener:
    """Follows the control topic (or `topic`, read back `history_seconds` at start): adds
    each canceled id to `canceled`, then calls `on_cancel(id, reason)`; records each
    attempt started in `attempts`."""

    def __init__(self, settings: Settings, canceled: CanceledIds, on_cancel: CancelHandler, *,
                 attempts: Attempts, topic: str | None = None,
                 history_seconds: float | None = None) -> None:
        self.settings = settings
        self.topic = topic or Topics(settings.kafka.topic_prefix).control
        self.history_seconds = (settings.executor.control_history_seconds
                                if history_seconds is None else history_seconds)
        self.on_cancel = on_cancel
        self.canceled = canceled
        self.attempts = attempts
        self.caught_up = asyncio.Event()
        """Set once the history window up to the start has been read."""
        self.positions: dict[TopicPartition, int] = {}
        """Where each partition has been read up to (a restarted consumer continues there)."""

    async def run(self, stop: asyncio.Event, producer: AIOKafkaProducer) -> None:
        """Read until `stop`; `caught_up` is set once the start-up history is applied.

        `producer` (started) is only asked for the topic's partitions. A Kafka outage
        restarts the consumer (after a backoff) instead of ending the listener.
        """
        await retrying("control listener", lambda: self._follow(stop, producer), stop=stop,
                       uses=(Dependency.KAFKA,))

    async def _follow(self, stop: asyncio.Event, producer: AIOKafkaProducer) -> None:
        # No group: every executor reads every partition, from where it seeks to.
        consumer = create_consumer(self.settings.kafka, client_id="inferhook-executor-control",
                                   group_id=None, auto_offset_reset="latest")
        try:
            await consumer.start()
            partitions = [TopicPartition(self.topic, p)
                          for p in sorted(await producer.partitions_for(self.topic))]
            consumer.assign(partitions)
            if self.positions.keys() >= set(partitions):
                for tp in partitions:
                    consumer.seek(tp, self.positions[tp])
                targets = dict(self.positions)
            else:
                targets = await self._seek_to_window(consumer, partitions)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(record.headers, record.value)
                    self.positions[tp] = records[-1].offset + 1
                if not self.caught_up.is_set() and await _reached(consumer, targets):
                    self.caught_up.set()
                    log.info("%s read back %.0fs: %d canceled ids, %d attempt counts", self.topic,
                             self.history_seconds, len(self.canceled), len(self.attempts))
        finally:
            await consumer.stop()

    async def _seek_to_window(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
                              ) -> dict[TopicPartition, int]:
        since_ms = int((time.time() - self.history_seconds) * 1000)
        found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        for tp in partitions:
            offset = found.get(tp)
            consumer.seek(tp, offset.offset if offset is not None else ends[tp])
        return ends

    def _apply(self, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
               value: bytes | None) -> None:
        try:
            event = PredictionEvent.decode(headers, value)
        except DecodeError as exc:
            log.warning("ignoring a control record: %s", exc)
            return
        if event.type is EventType.ATTEMPT_STARTED and isinstance(event.data, AttemptStarted):
            self.attempts.record(event.subject, event.data.attempt)
        elif event.type is EventType.CANCEL_REQUESTED and isinstance(event.data, CancelRequested):
            self.canceled.add(event.subject, event.data.reason)
            self.on_cancel(event.subject, event.data.reason)


async def _reached(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    for tp, end in targets.items():
        if await consumer.position(tp) < end:
            return False
    return True

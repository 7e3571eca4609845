"""The supervisor's `started` (phase loading) for requests waiting on a model it starts.

A model at zero executors gets one when a request arrives (cli.scaling), but until that
executor has started, joined the group and taken the request (2.5 s from the warm spare,
9 s from a new process) the prediction would show `pending`. The supervisor knows at once
that its model is being loaded for it, so it says so: it reads the model's uncommitted
request records (the backlog inferhook.groups measured, from the executors group's
committed offsets to the ends, every priority topic) with a consumer of its own (no
group) and emits for each the event an executor emits for a cold start: `started`, phase
`loading`, sequence `LOADING_SEQUENCE`, id `event_id(prediction, LOADING_SEQUENCE)`.

That is the executor's own event for the same slot: when the executor then loads the
model for the request and emits its `loading`, both records are one event (one id, one
sequence, one webhook id); the read model applies the first and drops the other. A
prediction that is further along, or terminal, ignores it (the read model never moves
back by sequence, and terminal states are final), so the event order and every outcome
stay what the executor makes them.

Until an executor runs it, such a prediction runs nowhere: a cancel treats `started` in
phase `loading` like `pending` (ingest.cancel), the executor that takes it later skips it
(the cancel is on the control topic), and the reaper gives it `load_grace`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime

from aiokafka import TopicPartition

from inferhook import tracing
from inferhook.kafka import create_consumer, create_producer, publish
from inferhook.settings import KafkaSettings
from schemas.events import LOADING_SEQUENCE, EventType, PredictionEvent, Started, event_id, utcnow
from schemas.topics import Topics

log = logging.getLogger(__name__)

SOURCE = f"inferhook/supervisor/{socket.gethostname()}/{os.getpid()}"
READ_SECONDS = 5.0
"""At most this long reading one model's uncommitted records per look (the rest next look)."""


class LoadingNotices:
    """Emits `started` (loading) for the uncommitted requests of models being started, once
    per prediction (open it with `start`, end with `close`)."""

    def __init__(self, kafka: KafkaSettings, *, limit: int = 1000, remember: int = 100_000) -> None:
        self.limit, self.remember = limit, remember
        """Records read per model per look; prediction ids remembered as told."""
        self._consumer = create_consumer(kafka, client_id="inferhook-supervisor-loading",
                                         group_id=None)
        self._producer = create_producer(kafka, client_id="inferhook-supervisor")
        self._events = Topics(kafka.topic_prefix).events
        self._told: OrderedDict[str, None] = OrderedDict()

    async def start(self) -> None:
        """Connect to Kafka."""
        await self._producer.start()
        await self._consumer.start()

    async def close(self) -> None:
        """Disconnect."""
        await self._consumer.stop()
        await self._producer.stop()

    def told(self, prediction_id: str) -> bool:
        """True once this supervisor emitted the prediction's `loading`."""
        return prediction_id in self._told

    async def announce(self, uncommitted: Mapping[TopicPartition, tuple[int, int]]) -> list[str]:
        """Emit `loading` for each request in `uncommitted` (partition → [first, end) offsets)
        not told before; return the prediction ids told now, once their events are durable."""
        waiting = await self._read(uncommitted)
        now = utcnow()
        await asyncio.gather(*(publish(self._producer, self._events, _loading(pid, now),
                                       trace_context=tracing.from_kafka(headers))
                               for pid, headers in waiting.items()))
        for pid in waiting:
            self._told[pid] = None
        while len(self._told) > self.remember:
            self._told.popitem(last=False)
        return list(waiting)

    async def _read(self, uncommitted: Mapping[TopicPartition, tuple[int, int]]
                    ) -> dict[str, list[tuple[str, bytes]]]:
        """The headers of the records in the ranges not told before, up to
        `limit` of them (the next look reads on past the told ones), by prediction id."""
        if not uncommitted:
            return {}
        consumer = self._consumer
        consumer.assign(list(uncommitted))
        for tp, (first, _) in uncommitted.items():
            consumer.seek(tp, first)
        found: dict[str, list[tuple[str, bytes]]] = {}
        left = {tp for tp, (first, end) in uncommitted.items() if end > first}
        deadline = time.monotonic() + READ_SECONDS
        while left and len(found) < self.limit and time.monotonic() < deadline:
            batches = await consumer.getmany(*left, timeout_ms=100, max_records=self.limit)
            for tp, records in batches.items():
                end = uncommitted[tp][1]
                for record in records:
                    subject = dict(record.headers).get("ce_subject")
                    pid = subject.decode("utf-8", "replace") if subject else None
                    if record.offset < end and pid and pid not in self._told \
                            and len(found) < self.limit:
                        found.setdefault(pid, list(record.headers))
            for tp in list(left):
                if await consumer.position(tp) >= uncommitted[tp][1]:
                    left.discard(tp)
        return found


def _loading(prediction_id: str, now: datetime) -> PredictionEvent:
    """The executor's cold-start `started` of one prediction (same id and sequence)."""
    return PredictionEvent(
        id=event_id(prediction_id, LOADING_SEQUENCE), source=SOURCE, type=EventType.STARTED,
        time=now, subject=prediction_id, sequence=LOADING_SEQUENCE,
        data=Started(started_at=now, phase="loading"))

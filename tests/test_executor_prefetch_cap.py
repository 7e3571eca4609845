"""The executor's cap on the request records it holds over all topics
(`INFERHOOK_EXECUTOR_PREFETCH_MAX_BYTES`), on real Kafka: with a cap of a few records, a
backlog many times larger is served whole, each owner in order, priorities by weight, and
the consumer never holds more than the cap plus one record.

The consumer is driven with a small fake `serve` that notes what it was handed; the
scheduling and the Kafka side are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from executors.consumer import Record, RequestConsumer
from inferhook.kafka import create_producer
from inferhook.settings import Settings
from schemas.events import Created, PredictionEvent
from schemas.priority import Priority
from tests.executor_kit import Requests

SPIN = "inferhook/spin"
PAD = "x" * 1500
"""Makes every request record about 1.7 KB, so a cap of a few KB holds a few records."""


class Served:
    """A fake `serve`: notes each request in the order it is handed over, then ends it."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.largest = 0
        self.all_in = asyncio.Event()
        self.expected = 0

    async def __call__(self, producer: AIOKafkaProducer, record: Record, event: PredictionEvent,
                       created: Created, ended: Callable[[], None]) -> None:
        self.order.append(event.subject)
        self.largest = max(self.largest, len(record.value or b""))
        await asyncio.sleep(0.005)  # a run's pace, so records wait while others are held
        ended()
        if len(self.order) >= self.expected:
            self.all_in.set()


async def test_the_cap_over_all_topics_bounds_what_is_held_and_everything_is_served(
        settings: Settings) -> None:
    cap = 6 * 2000
    capped = settings.model_copy(update={  # one partition: arrival order is offset order
        "kafka": settings.kafka.model_copy(update={"partitions": 1}),
        "executor": settings.executor.model_copy(update={"prefetch_max_bytes": cap})})
    async with Requests.open(capped, [SPIN]) as requests:
        by_owner: dict[str, list[str]] = {"a": [], "b": []}
        by_priority: dict[Priority, list[str]] = {Priority.BATCH: [], Priority.DEFAULT: []}
        for i in range(80):
            owner, priority = ("a", "b")[i % 2], (Priority.BATCH, Priority.DEFAULT)[i % 4 // 2]
            prediction_id = await requests.create(SPIN, {"milliseconds": 1, "pad": PAD},
                                                  owner=owner, priority=priority)
            by_owner[owner].append(prediction_id)
            by_priority[priority].append(prediction_id)
        served = Served()
        served.expected = 80
        producer = create_producer(capped.kafka, client_id="tests")
        await producer.start()
        stop = asyncio.Event()
        consumer = RequestConsumer(capped, producer, served, models=[SPIN], source="tests",
                                   assigned=asyncio.Event())
        task = asyncio.create_task(consumer.run(stop))
        try:
            await asyncio.wait_for(served.all_in.wait(), timeout=120)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=60)
            await producer.stop()
    assert sorted(served.order) == sorted(by_owner["a"] + by_owner["b"]), "each served once"
    for owner, ids in by_owner.items():
        for priority in by_priority:
            mine = [i for i in ids if i in by_priority[priority]]
            assert [i for i in served.order if i in mine] == mine, f"{owner}'s {priority} in order"
    position = {prediction_id: n for n, prediction_id in enumerate(served.order)}
    assert max(position[i] for i in by_priority[Priority.DEFAULT]) \
        < max(position[i] for i in by_priority[Priority.BATCH]), "default drained ahead of batch"
    assert consumer.peak_held_bytes >= cap, "the cap was reached: the test measured it"
    assert consumer.peak_held_bytes < cap + served.largest, "at most the cap plus one record"
    assert consumer.held_bytes == 0

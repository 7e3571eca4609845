"""scheduling (issue 14): queue times an executor's scheduling gives, on inferhook/spin.

Priority: an executor process serves a backlog of `batch` spin runs written to the request
topics first; while it works, `interactive` requests arrive one every INTERACTIVE_GAP
seconds. Their queue time (`metrics.queue_time`: created → run began) against the same
arrivals with no backlog.

Fairness: owner A's FLOOD runs then owner B's LATE runs are written first, then an executor
is started. B's queue time, counted from the executor's first run (so process start and
model load don't count), against the same records all under A's name: the order a FIFO
queue would give them, in the same run.

Every run takes RUN_MS of compute; the executor's own `started`/`succeeded` events are read
back from the events topic.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from bench.context import Context
from bench.events import event, produce
from bench.results import Result
from bench.stats import percentile_ms
from cli.infra.process import terminate
from inferhook.kafka import create_producer, ensure_topics, publish
from inferhook.settings import KafkaSettings
from schemas.events import (
    CREATED_SEQUENCE,
    Completed,
    Created,
    EventType,
    PredictionEvent,
    Started,
    utcnow,
)
from schemas.priority import Priority
from schemas.topics import Topics

SPIN = "inferhook/spin"
RUN_MS = 50
BACKLOG = 300
"""Batch runs queued ahead of the interactive ones (15 s of work)."""
INTERACTIVE = 20
INTERACTIVE_GAP = 0.4
FLOOD = 500
LATE = 10


@dataclass
class Served:
    """What the events topic says of one prediction."""

    started: float | None = None
    queue_time: float | None = None


def _created(owner: str, priority: Priority) -> PredictionEvent:
    prediction_id = str(uuid.uuid4())
    return event(prediction_id, CREATED_SEQUENCE, EventType.CREATED, Created(
        owner=owner, model=SPIN, input={"milliseconds": RUN_MS}, created_at=utcnow(),
        priority=priority))


async def _read(kafka: KafkaSettings, topic: str, ids: set[str], timeout: float,
                need: int | None = None) -> dict[str, Served]:
    """Follow `topic` from its start until `need` (default: every one) of `ids` have an
    outcome."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, Served] = {}
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(done & ids) < (len(ids) if need is None else need) \
                and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    item = PredictionEvent.decode(record.headers, record.value)
                    served = seen.setdefault(item.subject, Served())
                    if isinstance(item.data, Started) and item.data.phase == "running":
                        served.started = item.data.started_at.timestamp()
                    elif isinstance(item.data, Completed):
                        served.queue_time = item.data.metrics.get("queue_time")
                        done.add(item.subject)
    finally:
        await consumer.stop()
    return seen


class Scenario:
    """Fresh topics and an executor process for spin under them."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.topics = Topics(f"{ctx.stack.topic_prefix}s{uuid.uuid4().hex[:6]}")
        self.kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap,
                                   topic_prefix=self.topics.prefix)

    async def fill(self, records: list[tuple[str, Priority]]) -> list[str]:
        """Write `created` requests (owner, priority) to the request topics; their ids."""
        await ensure_topics(self.kafka, [self.topics.events,
                                         *self.topics.all_requests(SPIN)])
        made = [(_created(owner, priority), priority) for owner, priority in records]
        await produce(self.kafka, self.topics.events, [e for e, _ in made])
        for priority in Priority:
            await produce(self.kafka, self.topics.requests(SPIN, priority),
                          [e for e, p in made if p is priority])
        return [e.subject for e, _ in made]

    def start(self) -> int:
        service = self.ctx.stack.spawn_service(
            "executor", SPIN, log_name=f"executor-{self.topics.prefix}",
            INFERHOOK_KAFKA_TOPIC_PREFIX=self.topics.prefix)
        return service.pid

    async def stop(self, pid: int) -> None:
        await asyncio.to_thread(terminate, pid, timeout=10)


async def _interactive_queue_times(ctx: Context, backlog: int) -> list[float]:
    """Queue times of INTERACTIVE requests arriving while `backlog` batch runs wait."""
    scenario = Scenario(ctx)
    batch = await scenario.fill([("a", Priority.BATCH)] * backlog)
    pid = scenario.start()
    producer = create_producer(scenario.kafka, client_id="bench")
    await producer.start()
    urgent: list[str] = []
    try:
        # once the first batch run is done, the executor is serving and the backlog waits
        await _read(scenario.kafka, scenario.topics.events, set(batch), timeout=120, need=1)
        for _ in range(INTERACTIVE):
            item = _created("b", Priority.INTERACTIVE)
            await publish(producer, scenario.topics.events, item)
            await publish(producer, scenario.topics.requests(SPIN, Priority.INTERACTIVE), item)
            urgent.append(item.subject)
            await asyncio.sleep(INTERACTIVE_GAP)
        served = await _read(scenario.kafka, scenario.topics.events, set(urgent), timeout=120)
    finally:
        await producer.stop()
        await scenario.stop(pid)
    return [q for i in urgent if (q := served.get(i, Served()).queue_time) is not None]


async def _late_owner_waits(ctx: Context, *, fair: bool) -> list[float]:
    """Seconds from the executor's first run to each of B's runs (B's as A's when not `fair`)."""
    scenario = Scenario(ctx)
    flood = await scenario.fill([("a", Priority.DEFAULT)] * FLOOD)
    late = await scenario.fill([("b" if fair else "a", Priority.DEFAULT)] * LATE)
    pid = scenario.start()
    try:
        served = await _read(scenario.kafka, scenario.topics.events, set(flood + late),
                             timeout=FLOOD * RUN_MS / 1000 * 4 + 60)
    finally:
        await scenario.stop(pid)
    first = min((s.started for s in served.values() if s.started is not None), default=None)
    if first is None:
        return []
    return [s.started - first for i in late if (s := served.get(i)) and s.started is not None]


async def run(ctx: Context) -> list[Result]:
    """Interactive queue time with and without a batch backlog; B's wait, fair vs FIFO."""
    if SPIN not in ctx.catalog():
        ctx.note("scheduling", "inferhook/spin is not in the catalog: nothing measured.")
        return []
    quiet = await _interactive_queue_times(ctx, backlog=1)
    busy = await _interactive_queue_times(ctx, backlog=BACKLOG)
    fair = await _late_owner_waits(ctx, fair=True)
    fifo = await _late_owner_waits(ctx, fair=False)
    ctx.note("scheduling", f"spin runs of {RUN_MS} ms, one at a time. Priority: {INTERACTIVE} "
                           f"interactive requests, one per {INTERACTIVE_GAP} s, with {BACKLOG} "
                           f"batch runs queued first vs with none; queue_time from the "
                           f"executor's metrics. Fairness: owner A's {FLOOD} runs then B's "
                           f"{LATE}, written before the executor starts; B's wait from the "
                           f"executor's first run; FIFO = the same records all under A's name.")
    return [
        Result.measure("interactive queue time p50 with a batch backlog", "ms", percentile_ms(busy, 50),
                       baseline=("no backlog", percentile_ms(quiet, 50))),
        Result.measure("interactive queue time p99 with a batch backlog", "ms", percentile_ms(busy, 99),
                       baseline=("no backlog", percentile_ms(quiet, 99))),
        Result.measure(f"late owner's p50 wait behind a {FLOOD}-run flood", "ms", percentile_ms(fair, 50),
                       baseline=("FIFO (same records, one owner)", percentile_ms(fifo, 50))),
    ]

"""The executor loop: consume request topics, run the models, emit lifecycle events, commit.

Delivery is at least once: a request's offset is committed only after its outcome event
is durable in Kafka (records finish out of order; executors.offsets keeps the commit
behind the oldest unfinished one). An executor killed mid-run leaves the request to the
next member of the group; the re-run numbers its events in the same fixed slots, so the
read model and the webhooks see one outcome (see schemas.events). Kafka transactions are
not used: the outcome events go to another topic than the offsets, and aiokafka's
transactional producer cannot be shared by the concurrent runs of one executor.

SIGTERM (the `stop` event) stops consumption, lets in-flight work finish for up to
`drain_seconds`, commits, and leaves the group.

Kafka going away does not end the executor (DESIGN.md, invariant 8): it waits for Kafka
at start, and when an outcome could not be made durable, or a Kafka error escapes, the
connection part (producer, control listener, consumer) drains and starts over under
`inferhook.resilience.retrying`, so the requests not committed run again from the
group's committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from executors.control import ControlListener
from executors.errors import ModelLoadError
from executors.job import Job
from executors.offsets import OffsetTracker
from executors.pool import ModelPool, intra_op_threads
from executors.runtime import LoadedModel
from inferhook import logs, metrics, tracing
from inferhook.catalog import CatalogEntry, load_catalog
from inferhook.kafka import create_producer, ensure_topics
from inferhook.resilience import Dependency, outage, retrying
from inferhook.settings import Settings
from schemas.events import Created, DecodeError, PredictionError, PredictionEvent, utcnow
from schemas.status import FailureReason
from schemas.topics import Topics

log = logging.getLogger(__name__)

COMMIT_TIMEOUT = 10.0
"""Seconds one offset commit may take (aiokafka retries one until Kafka is back); a commit
that times out is tried again on the next loop."""


def executor_source() -> str:
    """The CloudEvents `source` of one executor instance (unique per instance)."""
    return f"inferhook/executor/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move away, give their in-flight work a moment and commit it."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.executor.drain(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("executor %s assigned %s", self.executor.source,
                 ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing")
        self.executor.assigned.set()


class Executor:
    """Serves models from their request topics until stopped.

    Dedicated: pass the loaded models. Pooled (`pooled=True`): serves every model of the
    catalog, loading each on its first request into a bounded warm cache.
    """

    def __init__(self, settings: Settings, models: dict[str, LoadedModel] | None = None, *,
                 pooled: bool = False, catalog: dict[str, CatalogEntry] | None = None) -> None:
        self.settings = settings
        self.topics = Topics(settings.kafka.topic_prefix)
        self.source = executor_source()
        self.pooled = pooled
        self.threads = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                          thread_name_prefix="ort")
        if catalog is None:
            catalog = ({m.name: m.entry for m in (models or {}).values()} if not pooled
                       else load_catalog(settings.models_dir))
        self.pool = ModelPool(
            catalog, self.threads,
            memory_budget_bytes=int(settings.executor.memory_budget_mb * 2**20),
            threads=intra_op_threads(settings.executor.intra_op_threads, 1 if pooled else len(catalog)))
        self._models = models or {}
        self.jobs: dict[str, Job] = {}
        self.tracker = OffsetTracker()
        self.assigned = asyncio.Event()
        """Set once the group gave this executor its partitions (tests wait for it)."""
        self.control = ControlListener(settings, self.cancel)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._tasks: dict[asyncio.Task[None], TopicPartition | None] = {}
        self._lost: KafkaError | None = None
        """Why an outcome did not become durable (Kafka away): the connection starts over."""

    @property
    def served(self) -> list[str]:
        """The models this executor takes requests for."""
        return list(self.pool.catalog)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, run and commit until `stop` is set; in-flight work drains first."""
        tracing.setup(self.settings.tracing, service="executor")
        async with metrics.serving(self.settings.metrics):
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        for model in self._models.values():
            self.pool.add(model)
        try:
            await retrying("executor", lambda: self._connected(stop), stop=stop,
                           uses=(Dependency.KAFKA,))
        finally:
            await self.pool.close()
            self.threads.shutdown(wait=False, cancel_futures=True)

    async def _connected(self, stop: asyncio.Event) -> None:
        """One connection to Kafka: serve until `stop`, or raise when Kafka went away (the
        in-flight work drains and what it finished is committed first)."""
        request_topics = [self.topics.requests(name) for name in self.served]
        await ensure_topics(self.settings.kafka, [self.topics.events, self.topics.control,
                                                  self.topics.dead_letter, *request_topics])
        control_stop = asyncio.Event()
        self._producer = producer = create_producer(self.settings.kafka, client_id="inferhook-executor")
        self._lost = None
        try:
            await producer.start()
            control = asyncio.create_task(self.control.run(control_stop, producer), name="control")
            try:
                await _first(self.control.caught_up.wait(), control)
                await self._consume_requests(request_topics, stop)
            finally:
                control_stop.set()
                await asyncio.gather(control, return_exceptions=True)
        finally:
            await producer.stop()

    async def _consume_requests(self, request_topics: list[str], stop: asyncio.Event) -> None:
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap,
            group_id=f"{self.topics.prefix}.executors", client_id="inferhook-executor",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", max_poll_records=64,
            session_timeout_ms=self.settings.executor.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.settings.executor.session_timeout_ms // 4))
        # Pooled or not, the catalog is read once at start, so the topics are known: a
        # pattern would also take requests of models this executor was told not to serve.
        consumer.subscribe(request_topics, listener=_Rebalance(self))
        try:
            await consumer.start()
            log.info("executor %s serving %s (%s)", self.source, ", ".join(self.served),
                     "pooled" if self.pooled else "dedicated")
            await self._consume(consumer, stop)
        finally:
            await self._settle_all()
            await consumer.stop()

    async def _settle_all(self) -> None:
        """Let in-flight work finish (bounded) and commit it; what is left runs again later."""
        await self.drain(None)
        leftover = list(self._tasks)
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        self.tracker = OffsetTracker()

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        paused = False
        limit = self.settings.executor.max_in_flight
        models = {self.topics.requests(name): name for name in self.served}
        refreshed = -math.inf
        while not stop.is_set():
            if self._lost is not None:
                raise self._lost
            if time.monotonic() - refreshed >= self.settings.metrics.refresh_seconds:
                refreshed = time.monotonic()
                for topic, lag in (await metrics.consumer_lag(consumer, topics=models)).items():
                    metrics.QUEUE_DEPTH.labels(models[topic]).set(lag)
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

    def _spawn(self, coro: Coroutine[Any, Any, None], tp: TopicPartition | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = tp
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        """Serve one request record, then mark its offset done: every path but one ends
        there. The exception: Kafka went away before the outcome was durable; the offset
        stays uncommitted and the connection starts over, so the request runs again."""
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

    async def _settle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Run the request, or dead-letter it when it cannot be decoded; return once the
        outcome (or the dead letter) is durable."""
        try:
            event, created = _request_of(record)
        except DecodeError as exc:
            await self._dead_letter(record, str(exc))
        else:
            await self._run_request(record, event, created)

    async def _run_request(self, record: ConsumerRecord[bytes, bytes], event: PredictionEvent,
                           created: Created) -> None:
        # The run continues the trace of the request (its `created` record's traceparent).
        with logs.bound_prediction(event.subject), tracing.tracer().start_as_current_span(
                f"run {created.model}", context=tracing.from_kafka(record.headers),
                kind=SpanKind.CONSUMER,
                attributes={"inferhook.prediction_id": event.subject,
                            "inferhook.model": created.model}):
            job = Job(self._require_producer(), self.topics.events, self.source,
                      event.subject, created, trace_context=otel_context.get_current())
            self.jobs[job.id] = job
            try:
                await self._serve(job)
            finally:
                self.jobs.pop(job.id, None)

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("executor is not running")
        return self._producer

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.warning("dead-lettering %s@%d: %s", record.topic, record.offset, reason)
        await self._require_producer().send_and_wait(
            self.topics.dead_letter, record.value, key=record.key,
            headers=[*record.headers, ("inferhook_error", reason.encode()),
                     ("inferhook_topic", record.topic.encode()),
                     ("inferhook_offset", str(record.offset).encode())])

    async def _serve(self, job: Job) -> None:
        created = job.created
        if self.control.canceled.get(job.id) is not None:
            await job.end(silent=True)  # canceled while pending: ingest wrote `canceled`
            return
        entry = self.pool.catalog.get(created.model)
        if entry is None:
            await job.end(error=PredictionError(reason=FailureReason.MODEL_ERROR,
                                                message=f"model {created.model} is not served here"))
            return
        if (early := self._too_late(job, entry)) is not None:
            await job.end(error=early)
            return
        job.max_run_seconds = entry.manifest.max_run_seconds
        job.arm_deadline()
        batcher = self.pool.warm(created.model)
        if batcher is None:
            job.loading()
            clock = asyncio.get_running_loop().time()
            try:
                batcher = await self.pool.load(created.model)
            except ModelLoadError as exc:
                await job.end(error=PredictionError(reason=FailureReason.MODEL_ERROR, message=str(exc)))
                return
            job.load_time = asyncio.get_running_loop().time() - clock
        if not job.finished:
            batcher.submit(job)
        await job.wait()

    @staticmethod
    def _too_late(job: Job, entry: CatalogEntry) -> PredictionError | None:
        now = utcnow()
        created = job.created
        if created.deadline is not None and now >= created.deadline:
            return PredictionError(reason=FailureReason.DEADLINE,
                                   message="the deadline (Cancel-After) passed before the run started")
        queued = timedelta(seconds=entry.manifest.queue_deadline_seconds)
        if now > created.created_at + queued:
            return PredictionError(
                reason=FailureReason.EXPIRED_IN_QUEUE,
                message=f"waited in the queue longer than {entry.manifest.queue_deadline_seconds:g}s")
        return None

    def cancel(self, prediction_id: str, reason: FailureReason) -> None:
        """A cancel request arrived: end the job if it is here (silently if it has not started)."""
        job = self.jobs.get(prediction_id)
        if job is not None and not job.finished:
            log.info("canceling prediction %s (%s)", prediction_id, reason)
            job.stop(PredictionError(reason=reason, message="canceled on request"), silent_if_pending=True)


def _request_of(record: ConsumerRecord[bytes, bytes]) -> tuple[PredictionEvent, Created]:
    """The `created` event a request record holds, and its data; DecodeError when it holds
    anything else."""
    event = PredictionEvent.decode(record.headers, record.value)
    if not isinstance(event.data, Created):
        raise DecodeError(f"expected a created event, got {event.type.value}")
    return event, event.data


async def _first(wait: Coroutine[Any, Any, Any], watched: asyncio.Task[None]) -> None:
    """Await `wait`, unless `watched` ends first (then raise what ended it)."""
    waiter = asyncio.ensure_future(wait)
    done, _ = await asyncio.wait({waiter, watched}, return_when=asyncio.FIRST_COMPLETED)
    if watched in done:
        waiter.cancel()
        watched.result()
        raise RuntimeError("control listener stopped before it caught up")


def load_models(settings: Settings, names: list[str]) -> dict[str, LoadedModel]:
    """Load the named models (blocking); intra-op threads split the cores between them."""
    catalog = load_catalog(settings.models_dir)
    unknown = sorted(set(names) - set(catalog))
    if unknown:
        raise ValueError(f"unknown models: {', '.join(unknown)}")
    chosen = names or list(catalog)
    threads = intra_op_threads(settings.executor.intra_op_threads, len(chosen))
    return {name: LoadedModel.load(catalog[name], intra_op_threads=threads) for name in chosen}

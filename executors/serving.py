"""How an executor serves one request: the decisions between a decoded request and its batch.

In order: a request canceled while pending ends silently (ingest wrote `canceled`); one
for a model not served here fails `model_error`; one whose time is already up ends
without running (schemas.deadlines); one whose earlier attempts were all lost to
infrastructure (executors.attempts) fails `infrastructure` and is dead-lettered;
otherwise its attempt is recorded on the attempts topic, its deadline is armed, its model
is loaded if cold (`started`, phase loading, goes out first) and the job joins its
model's batch. A model that will not load puts the request back on its topic (after a
backoff) for another attempt. Every path then waits for the job's outcome to be durable,
so `serve` returning means the request's offset may be committed. A cancel request ends
the job wherever it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from executors.attempts import (
    ATTEMPTS_HEADER,
    CRASHED,
    LOST_HEADER,
    Attempts,
    attempts_in_headers,
    lost_in_headers,
    next_attempt,
)
from executors.consumer import Record
from executors.control import CanceledIds
from executors.deadletter import INFRASTRUCTURE, dead_letter
from executors.errors import ModelLoadError
from executors.job import Job
from executors.pool import ModelPool
from inferhook import logs, metrics, tracing
from inferhook.kafka import publish
from inferhook.resilience import Backoff
from schemas import deadlines
from schemas.events import Created, PredictionError, PredictionEvent, attempt_started, utcnow
from schemas.status import FailureReason
from schemas.topics import Topics

log = logging.getLogger(__name__)


LOAD_RETRY = Backoff(first=0.5, factor=2.0, cap=10.0)
"""How long a request whose model would not load waits before it goes back on its topic."""


def _canceled(reason: FailureReason) -> PredictionError:
    return PredictionError(reason=reason, message="canceled on request")


class RequestServer:
    """Serves requests from the models of `pool`; knows the jobs in progress here."""

    def __init__(self, pool: ModelPool, canceled: CanceledIds, attempts: Attempts, *,
                 topics: Topics, source: str) -> None:
        self.pool, self.canceled, self.attempts = pool, canceled, attempts
        self.topics, self.source = topics, source
        self._recording: set[asyncio.Task[None]] = set()
        """First attempts' records on their way to Kafka (see `_begin_attempt`)."""
        self.jobs: dict[str, Job] = {}
        """Jobs in progress by prediction id (so that a cancel finds its job)."""

    async def serve(self, producer: AIOKafkaProducer, record: Record, event: PredictionEvent,
                    created: Created, ended: Callable[[], None]) -> None:
        """Serve one request; call `ended` when the job ends (its batch may then take
        another) and return once its outcome is durable (see Job.wait)."""
        # The run continues the trace of the request (its `created` record's traceparent).
        with logs.bound_prediction(event.subject), tracing.tracer().start_as_current_span(
                f"run {created.model}", context=tracing.from_kafka(record.headers),
                kind=SpanKind.CONSUMER,
                attributes={"inferhook.prediction_id": event.subject,
                            "inferhook.model": created.model}):
            job = Job(producer, self.topics.events, self.source, event.subject, created,
                      trace_context=otel_context.get_current())
            job.on_end.append(lambda _: ended())
            self.jobs[job.id] = job
            try:
                await self._start(job, producer, record)
                await job.wait()
            finally:
                self.jobs.pop(job.id, None)

    async def _start(self, job: Job, producer: AIOKafkaProducer, record: Record) -> None:
        """Send the job on its way: end it at once, or hand it to its model's batcher."""
        if (reason := self.canceled.get(job.id)) is not None:
            job.end(error=_canceled(reason), silent_if_pending=True)
            return
        entry = self.pool.catalog.get(job.model)
        if entry is None:
            job.end(error=PredictionError(reason=FailureReason.MODEL_ERROR,
                                          message=f"model {job.model} is not served here"))
            return
        late = deadlines.expired_before_start(
            created_at=job.created.created_at, deadline=job.created.deadline,
            queue_deadline_seconds=entry.manifest.queue_deadline_seconds, now=utcnow())
        if late is not None:
            job.end(error=late)
            return
        previous = max(self.attempts.get(job.id), attempts_in_headers(record.headers))
        attempt = next_attempt(previous, entry.manifest.max_retries)
        if attempt is None:
            await self._give_up(job, producer, record, previous)
            return
        await self._begin_attempt(job, producer, attempt, record)
        job.arm_deadline()
        batcher = self.pool.warm(job.model)
        if batcher is None:
            job.loading()
            try:
                batcher = await self.pool.load(job.model)
            except ModelLoadError as exc:
                await self._requeue(job, producer, record, lost=f"the model did not load: {exc}")
                return
            job.loaded()
        if job.live:  # not canceled or past its deadline while its model loaded
            batcher.submit(job)

    async def _begin_attempt(self, job: Job, producer: AIOKafkaProducer, attempt: int,
                             record: Record) -> None:
        """Record attempt `attempt` on the attempts topic, so a run lost to a crash counts.

        A retry's record is durable before it runs, so a request that crashes its executor
        is given up after `max_retries`. A first attempt runs at once and its record follows:
        waiting held the model's window (one batch) over a Kafka round trip per run, which at
        `max_batch: 1` ran one request per round trip (the 3-broker chaos run fell behind).
        A crash before that record is durable costs one more first attempt, no more.
        """
        write = publish(producer, self.topics.attempts,
                        attempt_started(job.id, attempt, source=self.source, now=utcnow()))
        if attempt > 1:
            await write
        else:
            task = asyncio.get_running_loop().create_task(write)
            self._recording.add(task)
            task.add_done_callback(self._recorded)
        self.attempts.record(job.id, attempt)
        job.attempt = attempt
        if attempt > 1:
            cause = "load_failed" if lost_in_headers(record.headers) else "crashed"
            metrics.RETRIES.labels(job.model, cause).inc()
            log.info("prediction %s: attempt %d (%s)", job.id, attempt, cause)

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("attempt record not written (a crash now reruns attempt 1): %r", exc)

    async def _requeue(self, job: Job, producer: AIOKafkaProducer, record: Record, *,
                       lost: str) -> None:
        """Put the request back on its topic for another attempt, after a backoff (unless it
        ended meanwhile); this run ends without an outcome."""
        log.warning("prediction %s: attempt %d lost: %s", job.id, job.attempt, lost)
        await asyncio.sleep(LOAD_RETRY.delay(job.attempt))
        if not job.live:  # canceled or past its deadline meanwhile: that is its outcome
            return
        kept = [(k, v) for k, v in record.headers if k not in (ATTEMPTS_HEADER, LOST_HEADER)]
        await producer.send_and_wait(record.topic, record.value, key=record.key, headers=[
            *kept, (ATTEMPTS_HEADER, str(job.attempt).encode()), (LOST_HEADER, lost.encode())])
        job.end(silent=True)

    async def _give_up(self, job: Job, producer: AIOKafkaProducer, record: Record,
                       attempts: int) -> None:
        """Every attempt was lost: dead-letter the request, then fail it `infrastructure`."""
        lost = lost_in_headers(record.headers) or CRASHED
        message = f"{attempts} attempts were lost to infrastructure; the last: {lost}"
        await dead_letter(producer, self.topics.dead_letter, record, reason=INFRASTRUCTURE,
                          error=message, attempts=attempts)
        metrics.INFRASTRUCTURE_FAILURES.labels(job.model).inc()
        job.attempt = attempts
        job.end(error=PredictionError(reason=FailureReason.INFRASTRUCTURE, message=message))

    def cancel(self, prediction_id: str, reason: FailureReason) -> None:
        """A cancel request arrived: end the job if it is here (silently if not started)."""
        job = self.jobs.get(prediction_id)
        if job is not None and job.live:
            log.info("canceling prediction %s (%s)", prediction_id, reason)
            job.end(error=_canceled(reason), silent_if_pending=True)

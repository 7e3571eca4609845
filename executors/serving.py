"""How an executor serves one request: the decisions between a decoded request and its batch.

In order: a request canceled while pending ends silently (ingest wrote `canceled`); one
for a model not served here fails `model_error`; one whose time is already up ends
without running (schemas.deadlines); otherwise its deadline is armed, its model is loaded
if cold (`started`, phase loading, goes out first) and the job joins its model's batch.
Every path then waits for the job's outcome to be durable, so `serve` returning means the
request's offset may be committed. A cancel request ends the job wherever it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from executors.consumer import Record
from executors.control import CanceledIds
from executors.errors import ModelLoadError
from executors.job import Job
from executors.pool import ModelPool
from inferhook import logs, tracing
from schemas import deadlines
from schemas.events import Created, PredictionError, PredictionEvent, utcnow
from schemas.status import FailureReason

log = logging.getLogger(__name__)


def _canceled(reason: FailureReason) -> PredictionError:
    return PredictionError(reason=reason, message="canceled on request")


class RequestServer:
    """Serves requests from the models of `pool`; knows the jobs in progress here."""

    def __init__(self, pool: ModelPool, canceled: CanceledIds, *, events_topic: str,
                 source: str) -> None:
        self.pool, self.canceled = pool, canceled
        self.events_topic, self.source = events_topic, source
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
            job = Job(producer, self.events_topic, self.source, event.subject, created,
                      trace_context=otel_context.get_current())
            job.on_end.append(lambda _: ended())
            self.jobs[job.id] = job
            try:
                await self._start(job)
                await job.wait()
            finally:
                self.jobs.pop(job.id, None)

    async def _start(self, job: Job) -> None:
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
        job.arm_deadline()
        batcher = self.pool.warm(job.model)
        if batcher is None:
            job.loading()
            try:
                batcher = await self.pool.load(job.model)
            except ModelLoadError as exc:
                job.end(error=PredictionError(reason=FailureReason.MODEL_ERROR, message=str(exc)))
                return
            job.loaded()
        if job.live:  # not canceled or past its deadline while its model loaded
            batcher.submit(job)

    def cancel(self, prediction_id: str, reason: FailureReason) -> None:
        """A cancel request arrived: end the job if it is here (silently if not started)."""
        job = self.jobs.get(prediction_id)
        if job is not None and job.live:
            log.info("canceling prediction %s (%s)", prediction_id, reason)
            job.end(error=_canceled(reason), silent_if_pending=True)

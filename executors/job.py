"""One prediction being served: its events, its clock, and the once-only outcome.

Events are numbered in fixed slots (schemas.events): `started` loading 1, running 2,
logs/output 3…, the outcome TERMINAL_SEQUENCE. Starts and partial events are sent
without waiting; the outcome is sent only after them, and `finish` returns once it is
durable, so the caller may commit the request's offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.context import Context

from inferhook.kafka import publish
from inferhook.logs import bound_prediction
from schemas.events import (
    LOADING_SEQUENCE,
    RUNNING_SEQUENCE,
    TERMINAL_SEQUENCE,
    Completed,
    Created,
    EventData,
    EventType,
    Logs,
    Output,
    PredictionError,
    PredictionEvent,
    Started,
    utcnow,
)
from schemas.status import FailureReason

log = logging.getLogger(__name__)

_OUTCOME = {None: EventType.SUCCEEDED, FailureReason.CANCELED_BY_USER: EventType.CANCELED,
            FailureReason.DEADLINE: EventType.CANCELED}


class Job:
    """One run of one prediction on this executor."""

    def __init__(self, producer: AIOKafkaProducer, events_topic: str, source: str,
                 prediction_id: str, created: Created, *, max_run_seconds: float = 60.0,
                 trace_context: Context | None = None) -> None:
        self.producer, self.events_topic, self.source = producer, events_topic, source
        self.trace_context = trace_context
        """The run's trace: every event this job emits carries its `traceparent`."""
        self.id = prediction_id
        self.created = created
        self.max_run_seconds = max_run_seconds
        self.load_time: float | None = None
        """Seconds this prediction waited for its model to load (cold start), if it did."""
        self._timers: list[asyncio.TimerHandle] = []
        self._ending: asyncio.Task[None] | None = None
        self.started = False
        """True once `started` went out: from then on a cancel must emit `canceled`."""
        self.finished = False
        self.metrics: dict[str, float] = {"load_time": 0.0}
        self.on_finish: list[Callable[[Job], None]] = []
        self._run_clock: float | None = None
        self._pending: list[asyncio.Task[None]] = []
        self._next_partial = RUNNING_SEQUENCE
        self._done = asyncio.get_running_loop().create_future()

    @property
    def model(self) -> str:
        """The model's `owner/name`."""
        return self.created.model

    def _send(self, event_type: EventType, data: EventData, sequence: int) -> None:
        event = PredictionEvent(id=f"{self.id}-{sequence}", source=self.source, type=event_type,
                                time=utcnow(), subject=self.id, sequence=sequence, data=data)
        self._pending.append(asyncio.get_running_loop().create_task(
            publish(self.producer, self.events_topic, event, trace_context=self.trace_context)))

    def loading(self) -> None:
        """Say the model is being loaded for this prediction (cold start)."""
        self.started = True
        self._send(EventType.STARTED, Started(started_at=utcnow(), phase="loading"), LOADING_SEQUENCE)

    def arm_deadline(self) -> None:
        """End the job `canceled` (reason deadline) when its Cancel-After deadline passes."""
        if self.created.deadline is not None:
            delay = max(0.0, (self.created.deadline - utcnow()).total_seconds())
            self._timers.append(asyncio.get_running_loop().call_later(delay, self.stop, PredictionError(
                reason=FailureReason.DEADLINE, message="the deadline (Cancel-After) passed")))

    def stop(self, error: PredictionError, *, silent_if_pending: bool = False) -> None:
        """End the job early (cancel, deadline, run time) with `error`.

        `silent_if_pending`: emit nothing when `started` has not gone out yet (a cancel
        request: ingest writes `canceled` itself for predictions still pending).
        """
        if self.claim():
            self._ending = asyncio.get_running_loop().create_task(
                self.finish(error=error, silent=silent_if_pending and not self.started))

    def running(self) -> None:
        """Say the run begins (and start the clock of the model's maximum run time)."""
        load_time = self.load_time
        now = utcnow()
        self._timers.append(asyncio.get_running_loop().call_later(
            self.max_run_seconds, self.stop, PredictionError(
                reason=FailureReason.TIMED_OUT, message=f"ran longer than {self.max_run_seconds:g}s")))
        self.started = True
        self._run_clock = time.perf_counter()
        self.metrics["queue_time"] = max(0.0, (now - self.created.created_at).total_seconds()
                                         - (load_time or 0.0))
        if load_time is not None:
            self.metrics["load_time"] = load_time
        self._send(EventType.STARTED, Started(started_at=now, phase="running", load_time=load_time),
                   RUNNING_SEQUENCE)

    def log(self, line: str) -> None:
        """Append a log line (event loop thread only)."""
        if not self.finished:
            self._next_partial += 1
            self._send(EventType.LOGS, Logs(logs=line if line.endswith("\n") else line + "\n"),
                       self._next_partial)

    def output(self, value: Any) -> None:
        """Publish partial output (event loop thread only)."""
        if not self.finished:
            self._next_partial += 1
            self._send(EventType.OUTPUT, Output(output=value), self._next_partial)

    def claim(self) -> bool:
        """Take the right to end this job: True exactly once."""
        if self.finished:
            return False
        self.finished = True
        for callback in self.on_finish:
            callback(self)
        return True

    async def finish(self, *, output: Any = None, error: PredictionError | None = None,
                     silent: bool = False) -> None:
        """Emit the outcome once (after every earlier event of the run) and mark the job done.

        `silent` ends it without an event (a pending prediction canceled by ingest, which
        wrote the `canceled` event itself). The caller must have claim()ed the job.
        """
        for timer in self._timers:
            timer.cancel()
        try:
            if not silent:
                with bound_prediction(self.id):  # finish runs in the batcher's tasks too
                    await self._emit_outcome(output, error)
        except KafkaError as exc:  # not durable: wait() raises it, so the request stays uncommitted
            log.warning("outcome of prediction %s not written: %r", self.id, exc)
            if not self._done.done():
                self._done.set_exception(exc)
        finally:
            if not self._done.done():
                self._done.set_result(None)

    async def _emit_outcome(self, output: Any, error: PredictionError | None) -> None:
        now = time.perf_counter()
        self.metrics.setdefault("queue_time", max(0.0, (utcnow() - self.created.created_at)
                                                  .total_seconds()))
        self.metrics["predict_time"] = now - self._run_clock if self._run_clock else 0.0
        self.metrics["total_time"] = (self.metrics["queue_time"] + self.metrics["load_time"]
                                      + self.metrics["predict_time"])
        event_type = _OUTCOME.get(error.reason if error else None, EventType.FAILED)
        await asyncio.gather(*self._pending, return_exceptions=True)
        completed = Completed(completed_at=utcnow(), output=output if error is None else None,
                              error=error, metrics=dict(self.metrics))
        self._send(event_type, completed, TERMINAL_SEQUENCE)
        await self._pending[-1]
        log.info("prediction %s %s (%s) in %.3fs", self.id, event_type.status,
                 error.reason if error else "ok", self.metrics["predict_time"])

    async def end(self, *, output: Any = None, error: PredictionError | None = None,
                  silent: bool = False) -> None:
        """claim() and finish() in one step; does nothing when the job already ended."""
        if self.claim():
            await self.finish(output=output, error=error, silent=silent)

    async def wait(self) -> None:
        """Return once the outcome is durable (or the job ended silently); raise the
        KafkaError that kept it from becoming durable."""
        await asyncio.shield(self._done)

"""One prediction being served: its states, its events, its clocks, and its one way to end.

A job moves through `JobState`; a move the table does not allow raises JobStateError:

    PENDING ──loading()──▶ LOADING ──running()──▶ RUNNING
       │  └──────────────running()──────────────▶   │
       └────────────── end() ──▶ ENDING ◀── end() ──┘   (from LOADING too)
                                   │ outcome durable, or not written
                                   ▼
                                 ENDED

`end()` is the one way to end a job, whoever decides it (the batch's result, a cancel,
the deadline or run-time timer, the executor before the run): the first call wins and
returns True, later ones return False. It stops the clocks, tells the `on_end` callbacks
at once (so a batch can stop a run nobody waits for), and writes the outcome in the
background; `wait()` returns once the outcome is durable, or raises the KafkaError that
kept it from being so (the request then stays uncommitted and runs again).

Events are numbered in fixed slots (schemas.events): `started` loading 1, running 2,
logs/output 3…, the outcome TERMINAL_SEQUENCE. Starts and partial events are sent
without waiting; the outcome is sent only after them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.context import Context

from executors.errors import JobStateError
from inferhook.kafka import publish
from inferhook.logs import bound_prediction
from schemas import deadlines
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
    event_id,
    utcnow,
)

log = logging.getLogger(__name__)


class JobState(StrEnum):
    """Where a job is on this executor."""

    PENDING = "pending"
    """Taken from its request topic; nothing emitted yet."""
    LOADING = "loading"
    """`started` (loading) went out: its model is being loaded (cold start)."""
    RUNNING = "running"
    """`started` (running) went out: its batch runs."""
    ENDING = "ending"
    """Its end was taken; the outcome is being written."""
    ENDED = "ended"
    """The outcome is durable, or was not written (Kafka away), or none was due."""

    @property
    def live(self) -> bool:
        """True until the end is taken: the job may still emit events and be ended."""
        return self in _LIVE

    @property
    def started(self) -> bool:
        """True once a `started` event went out (a cancel must then emit `canceled`)."""
        return self in _STARTED


_LIVE = frozenset({JobState.PENDING, JobState.LOADING, JobState.RUNNING})
_STARTED = frozenset({JobState.LOADING, JobState.RUNNING})
_NEXT: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.LOADING, JobState.RUNNING, JobState.ENDING}),
    JobState.LOADING: frozenset({JobState.RUNNING, JobState.ENDING}),
    JobState.RUNNING: frozenset({JobState.ENDING}),
    JobState.ENDING: frozenset({JobState.ENDED}),
    JobState.ENDED: frozenset(),
}


class Job:
    """One run of one prediction on this executor."""

    def __init__(self, producer: AIOKafkaProducer, events_topic: str, source: str,
                 prediction_id: str, created: Created, *,
                 trace_context: Context | None = None) -> None:
        self.producer, self.events_topic, self.source = producer, events_topic, source
        self.trace_context = trace_context
        """The run's trace: every event this job emits carries its `traceparent`."""
        self.id = prediction_id
        self.created = created
        self.state = JobState.PENDING
        self.load_time: float | None = None
        """Seconds this prediction waited for its model to load (cold start), if it did."""
        self.attempt = 1
        """Which attempt this run is (set before it starts; see executors.attempts)."""
        self.metrics: dict[str, float] = {"load_time": 0.0}
        self.on_end: list[Callable[[Job], None]] = []
        """Called (synchronously) when the end is taken."""
        self._timers: list[asyncio.TimerHandle] = []
        self._load_clock: float | None = None
        self._run_clock: float | None = None
        self._sending: list[asyncio.Task[None]] = []
        self._next_partial = RUNNING_SEQUENCE
        self._writing: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def model(self) -> str:
        """The model's `owner/name`."""
        return self.created.model

    @property
    def live(self) -> bool:
        """True until its end is taken (see JobState.live)."""
        return self.state.live

    def _move(self, to: JobState) -> None:
        if to not in _NEXT[self.state]:
            raise JobStateError(f"job {self.id}: {self.state} → {to} is not allowed")
        self.state = to

    def _send(self, event_type: EventType, data: EventData, sequence: int) -> None:
        event = PredictionEvent(id=event_id(self.id, sequence), source=self.source, type=event_type,
                                time=utcnow(), subject=self.id, sequence=sequence, data=data)
        self._sending.append(asyncio.get_running_loop().create_task(
            publish(self.producer, self.events_topic, event, trace_context=self.trace_context)))

    def loading(self) -> None:
        """Say the model is being loaded for this prediction (cold start); the load time
        counts from now until `loaded()`."""
        self._move(JobState.LOADING)
        self._load_clock = asyncio.get_running_loop().time()
        self._send(EventType.STARTED, Started(started_at=utcnow(), phase="loading",
                                              attempt=self.attempt), LOADING_SEQUENCE)

    def loaded(self) -> None:
        """The model is loaded: record how long this prediction waited for it."""
        if self._load_clock is not None:
            self.load_time = asyncio.get_running_loop().time() - self._load_clock

    def arm_deadline(self) -> None:
        """End the job (`deadlines.deadline_passed`) when its Cancel-After deadline passes."""
        if self.created.deadline is not None:
            self._after(deadlines.seconds_until(self.created.deadline, utcnow()),
                        deadlines.deadline_passed())

    def _after(self, seconds: float, error: PredictionError) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(
            seconds, partial(self.end, error=error)))

    def running(self, max_run_seconds: float) -> None:
        """Say the run begins, and start the clock of the model's maximum run time."""
        self._move(JobState.RUNNING)
        load_time = self.load_time
        now = utcnow()
        self._after(max_run_seconds, deadlines.timed_out(max_run_seconds))
        self._run_clock = time.perf_counter()
        self.metrics["queue_time"] = max(0.0, (now - self.created.created_at).total_seconds()
                                         - (load_time or 0.0))
        if load_time is not None:
            self.metrics["load_time"] = load_time
        self._send(EventType.STARTED, Started(started_at=now, phase="running", load_time=load_time,
                                              attempt=self.attempt), RUNNING_SEQUENCE)

    def log(self, line: str) -> None:
        """Append a log line (event loop thread only; dropped once the job is ending)."""
        if self.live:
            self._next_partial += 1
            self._send(EventType.LOGS, Logs(logs=line if line.endswith("\n") else line + "\n"),
                       self._next_partial)

    def output(self, value: Any) -> None:
        """Publish partial output (event loop thread only; dropped once the job is ending)."""
        if self.live:
            self._next_partial += 1
            self._send(EventType.OUTPUT, Output(output=value), self._next_partial)

    def end(self, *, output: Any = None, error: PredictionError | None = None,
            silent_if_pending: bool = False, silent: bool = False) -> bool:
        """End the job with `output` or `error`: True for the call that ends it, False when
        it was already ending. The outcome is written in the background (see `wait`).

        `silent_if_pending`: emit nothing when no `started` went out (a cancel request:
        ingest writes `canceled` itself for predictions still pending). `silent`: emit
        nothing at all (the request was put back on its topic to be run again).
        """
        if not self.live:
            return False
        silent = silent or (silent_if_pending and not self.state.started)
        self._move(JobState.ENDING)
        for timer in self._timers:
            timer.cancel()
        for callback in self.on_end:
            callback(self)
        self._writing = asyncio.get_running_loop().create_task(
            self._write_outcome(output, error, silent=silent))
        return True

    async def wait(self) -> None:
        """Return once the job has ended and its outcome is durable (or none was due);
        raise the KafkaError that kept the outcome from becoming durable."""
        await asyncio.shield(self._done)

    async def _write_outcome(self, output: Any, error: PredictionError | None, *,
                             silent: bool) -> None:
        try:
            if not silent:
                with bound_prediction(self.id):  # runs in a task of its own
                    await self._emit_outcome(output, error)
        except KafkaError as exc:  # not durable: wait() raises it, so the request stays uncommitted
            log.warning("outcome of prediction %s not written: %r", self.id, exc)
            self._done.set_exception(exc)
        finally:
            self._move(JobState.ENDED)
            if not self._done.done():
                self._done.set_result(None)

    async def _emit_outcome(self, output: Any, error: PredictionError | None) -> None:
        now = time.perf_counter()
        self.metrics.setdefault("queue_time", max(0.0, (utcnow() - self.created.created_at)
                                                  .total_seconds()))
        self.metrics["predict_time"] = now - self._run_clock if self._run_clock else 0.0
        self.metrics["total_time"] = (self.metrics["queue_time"] + self.metrics["load_time"]
                                      + self.metrics["predict_time"])
        self.metrics["attempts"] = self.attempt
        event_type = deadlines.outcome_type(error.reason if error else None)
        await asyncio.gather(*self._sending, return_exceptions=True)
        completed = Completed(completed_at=utcnow(), output=output if error is None else None,
                              error=error, metrics=dict(self.metrics))
        self._send(event_type, completed, TERMINAL_SEQUENCE)
        await self._sending[-1]
        log.info("prediction %s %s (%s) in %.3fs", self.id, event_type.status,
                 error.reason if error else "ok", self.metrics["predict_time"])

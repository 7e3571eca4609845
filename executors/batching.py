"""Dynamic batching: gather up to `max_batch` jobs or `max_delay_ms`, run once, split.

One batch per model runs at a time, in the thread pool; jobs that arrive meanwhile form
the next batch, so batches grow with load. A job that ends early (cancel, deadline, run
time) is dropped from its batch's results, and when every job of a running batch has
ended, the run is stopped with RunOptions.terminate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import onnxruntime as ort

from executors.errors import PredictionFailed
from executors.job import Job
from executors.runtime import Emitter, LoadedModel, new_run_options
from inferhook import metrics
from schemas.events import PredictionError
from schemas.status import FailureReason

log = logging.getLogger(__name__)


class ThreadEmitter:
    """Hands a handler's logs and partial output from the ORT thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        self.loop, self.job = loop, job

    def log(self, line: str) -> None:
        """Queue a log line for the job."""
        self.loop.call_soon_threadsafe(self.job.log, line)

    def output(self, value: Any) -> None:
        """Queue partial output for the job."""
        self.loop.call_soon_threadsafe(self.job.output, value)


class ActiveBatch:
    """The jobs of the run in progress and the options that can stop it."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.options: ort.RunOptions = new_run_options()

    def job_ended(self, _: Job) -> None:
        """Stop the run once none of its jobs wants the result any more."""
        if not any(job.live for job in self.jobs):
            self.options.terminate = True


class Batcher:
    """Serves one loaded model: queue, batch, run in the ORT threads, end each job."""

    def __init__(self, model: LoadedModel, ort_threads: ThreadPoolExecutor) -> None:
        self.model = model
        self.ort_threads = ort_threads
        self._queue: deque[Job] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._active: ActiveBatch | None = None
        self.busy = 0
        """Jobs queued or running here (a pooled model in use is not evicted)."""
        self._batch_sizes = metrics.BATCH_SIZE.labels(model.name)
        self._run_seconds = metrics.RUN_SECONDS.labels(model.name)

    def start(self) -> None:
        """Start the batching loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batch {self.model.name}")

    async def stop(self) -> None:
        """Stop the loop and terminate the run in progress; unfinished jobs stay uncommitted."""
        if self._active is not None:
            self._active.options.terminate = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, job: Job) -> None:
        """Queue a job; it emits `started` (running) when its batch begins."""
        self.busy += 1
        job.on_end.append(self._released)
        self._queue.append(job)
        self._arrived.set()

    def _released(self, _: Job) -> None:
        self.busy -= 1

    async def _gather(self) -> list[Job]:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        limit = self.model.max_batch
        end = loop.time() + self.model.entry.manifest.batching.max_delay_ms / 1000
        batch: list[Job] = []
        while len(batch) < limit:
            while self._queue and len(batch) < limit:
                job = self._queue.popleft()
                if job.live:
                    batch.append(job)
            remaining = end - loop.time()
            if len(batch) >= limit or remaining <= 0 or limit == 1:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return [job for job in batch if job.live]  # some may have ended while we waited

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            self._active = active = ActiveBatch(batch)
            max_run_seconds = self.model.entry.manifest.max_run_seconds
            for job in batch:
                job.running(max_run_seconds)
            for job in batch:
                job.on_end.append(active.job_ended)
            emitters: list[Emitter] = [ThreadEmitter(loop, job) for job in batch]
            self._batch_sizes.observe(len(batch))
            clock = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(
                    self.ort_threads, self.model.run_batch, [job.created.input for job in batch],
                    active.options, emitters)
            except Exception as exc:  # run_batch turns model errors into outcomes; this is a bug
                log.exception("batch of %s crashed", self.model.name)
                outcomes = [exc] * len(batch)
            finally:
                self._active = None
                self._run_seconds.observe(time.perf_counter() - clock)
            for job, outcome in zip(batch, outcomes, strict=True):
                _end(job, outcome)  # no-op for a job that ended meanwhile (cancel, clocks)


def _end(job: Job, outcome: Any) -> None:
    """End a job with what its run gave: output, or the failure it ended with."""
    if isinstance(outcome, PredictionFailed):
        job.end(error=PredictionError(reason=outcome.reason, message=outcome.message))
    elif isinstance(outcome, Exception):
        job.end(error=PredictionError(reason=FailureReason.MODEL_ERROR,
                                      message=f"{type(outcome).__name__}: {outcome}"))
    else:
        job.end(output=outcome)

"""The reaper: predictions that can no longer finish by themselves end, with a reason.

- pending or started past the create's deadline (`Cancel-After`) → `canceled`, `deadline`
- pending past the model's queue deadline → `failed`, `expired_in_queue`
- started past the model's max run time plus a grace period (its executor died) →
  `failed`, `timed_out`; the run time counts from the end of a cold start's model load
  (`load_time`), and a prediction still `loading` gets `load_grace` instead

The rule and the outcomes' wording are schemas.deadlines, shared with the executors; the
query (store.predictions.overdue) says which clock ran out. The reaper writes these
outcomes as events to Kafka (OUT_OF_BAND_SEQUENCE, so they outrank the executor's), not to
Postgres: Kafka stays the system of record and the projector applies them like any other
event. Started ones also get a cancel on the control topic, so an executor still running
them stops. One reaper pass runs at a time across dispatchers (a Postgres advisory lock); a
prediction reaped but not yet projected is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from contextlib import suppress

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.catalog import CatalogEntry
from inferhook.kafka import publish
from inferhook.resilience import Dependency, PartHealth
from schemas import deadlines
from schemas.events import PredictionError, cancel_request, out_of_band_outcome, utcnow
from schemas.manifest import ModelManifest
from schemas.topics import Topics
from store import predictions, server

log = logging.getLogger(__name__)
SOURCE = f"inferhook/dispatcher/{socket.gethostname()}/{os.getpid()}/reaper"
LOCK_KEY = 0x1F0_4EA9E4  # pg advisory lock id of the reaper
REMEMBER = 60.0
"""Seconds a reaped prediction is not reaped again while its event is being projected."""


def verdict(why: str, *, queue_deadline_seconds: float, max_run_seconds: float) -> PredictionError:
    """How an overdue prediction ends, from the clock that ran out (`why` of
    store.predictions.overdue)."""
    if why == "deadline":
        return deadlines.deadline_passed()
    if why == "queue":
        return deadlines.expired_in_queue(queue_deadline_seconds)
    return deadlines.timed_out(max_run_seconds, executor_gone=True)


class Reaper:
    """Finds overdue predictions every `interval` seconds and emits their end."""

    def __init__(self, engine: AsyncEngine, producer: AIOKafkaProducer, topics: Topics,
                 catalog: Mapping[str, CatalogEntry], *, interval: float, grace: float,
                 load_grace: float) -> None:
        self.engine, self.producer, self.topics = engine, producer, topics
        self.interval, self.grace, self.load_grace = interval, grace, load_grace
        self.models = sorted(catalog)
        self.queues = [catalog[m].manifest.queue_deadline_seconds for m in self.models]
        self.runs = [catalog[m].manifest.max_run_seconds for m in self.models]
        self.limits = dict(zip(self.models, zip(self.queues, self.runs, strict=True), strict=True))
        """Each model's (queue deadline, maximum run time) in seconds."""
        defaults = ModelManifest.model_fields
        self.default_queue = float(defaults["queue_deadline_seconds"].default)
        self.default_run = float(defaults["max_run_seconds"].default)
        self.recent: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Reap until `stop` is set; a pass that fails (a server away) is tried again."""
        health = PartHealth("reaper", network=Dependency.POSTGRES)
        while not stop.is_set():
            try:
                await self.reap_once()
                health.ok()
            except Exception as exc:
                if not health.failed(exc):
                    log.exception("reaper pass failed; trying again next interval")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)

    async def reap_once(self, limit: int = 1000) -> int:
        """One pass; returns how many predictions it ended."""
        now = time.monotonic()
        self.recent = {k: t for k, t in self.recent.items() if now - t < REMEMBER}
        async with self.engine.begin() as conn:
            if not await server.try_lock(conn, LOCK_KEY):
                return 0
            rows = await predictions.overdue(
                conn, models=self.models, queues=self.queues, runs=self.runs,
                default_queue=self.default_queue, default_run=self.default_run,
                grace=self.grace, load_grace=self.load_grace, limit=limit)
            rows = [r for r in rows if r.id not in self.recent]
            await asyncio.gather(*(self._end(r.id, r.status, self._verdict(r.why, r.model))
                                   for r in rows))
        for r in rows:
            self.recent[r.id] = now
        return len(rows)

    def _verdict(self, why: str, model: str) -> PredictionError:
        queue, run = self.limits.get(model, (self.default_queue, self.default_run))
        return verdict(why, queue_deadline_seconds=queue, max_run_seconds=run)

    async def _end(self, prediction_id: str, status: str, error: PredictionError) -> None:
        now = utcnow()
        log.info("reaping %s (%s): %s", prediction_id, status, error.reason.value)
        if status == "started":
            await publish(self.producer, self.topics.control, cancel_request(
                prediction_id, source=SOURCE, reason=error.reason, nonce=error.reason.value, now=now))
        await publish(self.producer, self.topics.events, out_of_band_outcome(
            prediction_id, source=SOURCE, event_type=deadlines.outcome_type(error.reason),
            error=error, now=now))

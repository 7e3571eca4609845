"""The executor: its parts put together, and its life from start to SIGTERM.

    Executor.dedicated / .pooled   which models, loaded how (pool.py)
    ControlListener                cancel requests from the control topic, and attempts
                                   from the attempts topic (control.py, attempts.py)
    RequestConsumer                the Kafka side of one connection (consumer.py)
    RequestServer                  how each request is served (serving.py)

Kafka transactions are not used: the outcome events go to another topic than the
offsets, and aiokafka's transactional producer cannot be shared by the concurrent runs of
one executor. An executor killed mid-run leaves the request to the next member of the
group; the re-run numbers its events in the same fixed slots, so the read model and the
webhooks see one outcome (see schemas.events).

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
import os
import socket
import uuid
from collections.abc import Coroutine
from typing import Any, Literal

from executors.attempts import ATTEMPTS_HISTORY_SECONDS, Attempts
from executors.consumer import RequestConsumer
from executors.control import CanceledIds, ControlListener
from executors.pool import ModelPool, intra_op_threads
from executors.runtime import LoadedModel
from executors.serving import RequestServer
from inferhook import metrics, tracing
from inferhook.catalog import CatalogEntry, load_catalog
from inferhook.kafka import create_producer, ensure_topics
from inferhook.resilience import Dependency, retrying
from inferhook.settings import Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

Mode = Literal["dedicated", "pooled"]


def executor_source() -> str:
    """The CloudEvents `source` of one executor instance (unique per instance)."""
    return f"inferhook/executor/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Executor:
    """Serves models from their request topics until stopped.

    Build one with `Executor.dedicated` (models loaded beforehand, always warm) or
    `Executor.pooled` (models loaded on their first request into a bounded warm cache).
    """

    def __init__(self, settings: Settings, pool: ModelPool, *, mode: Mode) -> None:
        self.settings, self.pool, self.mode = settings, pool, mode
        self.topics = Topics(settings.kafka.topic_prefix)
        self.source = executor_source()
        canceled, attempts = CanceledIds(settings.executor.canceled_ids_kept), Attempts()
        self.server = RequestServer(pool, canceled, attempts, topics=self.topics,
                                    source=self.source)
        self.control = ControlListener(settings, canceled, self.server.cancel, attempts=attempts)
        self.attempt_log = ControlListener(settings, canceled, self.server.cancel,
                                           attempts=attempts, topic=self.topics.attempts,
                                           history_seconds=ATTEMPTS_HISTORY_SECONDS)
        self.assigned = asyncio.Event()
        """Set once the group gave this executor its partitions (tests wait for it)."""

    @classmethod
    def dedicated(cls, settings: Settings, models: dict[str, LoadedModel]) -> Executor:
        """Serve exactly these loaded models (see `load_models`)."""
        catalog = {model.name: model.entry for model in models.values()}
        return cls(settings, ModelPool(
            catalog, memory_budget_bytes=_budget(settings), preloaded=models.values(),
            intra_op_threads=intra_op_threads(settings.executor.intra_op_threads, len(catalog))),
            mode="dedicated")

    @classmethod
    def pooled(cls, settings: Settings, names: list[str] | None = None) -> Executor:
        """Serve the named models of the catalog (all when `names` is empty), each loaded on
        its first request; names not in the catalog are ignored."""
        catalog: dict[str, CatalogEntry] = {
            name: entry for name, entry in load_catalog(settings.models_dir).items()
            if not names or name in names}
        return cls(settings, ModelPool(
            catalog, memory_budget_bytes=_budget(settings),
            intra_op_threads=intra_op_threads(settings.executor.intra_op_threads, 1)),
            mode="pooled")

    @property
    def served(self) -> list[str]:
        """The models this executor takes requests for."""
        return list(self.pool.catalog)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, run and commit until `stop` is set; in-flight work drains first."""
        tracing.setup(self.settings.tracing, service="executor")
        async with metrics.serving(self.settings.metrics):
            try:
                self.pool.start()
                await retrying("executor", lambda: self._connected(stop), stop=stop,
                               uses=(Dependency.KAFKA,))
            finally:
                await self.pool.close()

    def _windows(self) -> dict[str, int]:
        """Requests of each model that may run at once: one batch (the others wait, held,
        for the scheduler to choose among them)."""
        return {name: max(1, entry.manifest.batching.max_batch)
                for name, entry in self.pool.catalog.items()}

    async def _connected(self, stop: asyncio.Event) -> None:
        """One connection to Kafka: serve until `stop`, or raise when Kafka went away (the
        in-flight work drains and what it finished is committed first)."""
        await ensure_topics(self.settings.kafka, [
            self.topics.events, self.topics.control, self.topics.attempts, self.topics.dead_letter,
            *(topic for name in self.served for topic in self.topics.all_requests(name))])
        control_stop = asyncio.Event()
        producer = create_producer(self.settings.kafka, client_id="inferhook-executor")
        try:
            await producer.start()
            control = asyncio.create_task(self.control.run(control_stop, producer), name="control")
            attempt_log = asyncio.create_task(self.attempt_log.run(control_stop, producer),
                                              name="attempts")
            try:
                await _first(self.control.caught_up.wait(), control)
                await _first(self.attempt_log.caught_up.wait(), attempt_log)
                log.info("executor %s serving %s (%s)", self.source, ", ".join(self.served),
                         self.mode)
                await RequestConsumer(self.settings, producer, self.server.serve,
                                      models=self.served, source=self.source,
                                      assigned=self.assigned, windows=self._windows()).run(stop)
            finally:
                control_stop.set()
                await asyncio.gather(control, attempt_log, return_exceptions=True)
        finally:
            await producer.stop()


def _budget(settings: Settings) -> int:
    return int(settings.executor.memory_budget_mb * 2**20)


async def _first(wait: Coroutine[Any, Any, Any], watched: asyncio.Task[None]) -> None:
    """Await `wait`, unless `watched` ends first (then raise what ended it)."""
    waiter = asyncio.ensure_future(wait)
    done, _ = await asyncio.wait({waiter, watched}, return_when=asyncio.FIRST_COMPLETED)
    if watched in done:
        waiter.cancel()
        watched.result()
        raise RuntimeError("control listener stopped before it caught up")


def load_models(settings: Settings, names: list[str]) -> dict[str, LoadedModel]:
    """Load the named models (blocking; all of the catalog when `names` is empty);
    intra-op threads split the cores between them."""
    catalog = load_catalog(settings.models_dir)
    unknown = sorted(set(names) - set(catalog))
    if unknown:
        raise ValueError(f"unknown models: {', '.join(unknown)}")
    chosen = names or list(catalog)
    threads = intra_op_threads(settings.executor.intra_op_threads, len(chosen))
    return {name: LoadedModel.load(catalog[name], intra_op_threads=threads) for name in chosen}

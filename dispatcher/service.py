"""The dispatcher process: projector, outbox worker, reaper and retention sweep, side by side.

No part exits because Kafka or Postgres went away (DESIGN.md, invariant 8): the projector
runs under `retrying` and starts over from the offsets Postgres stored with its batches;
the outbox worker, the reaper, the retention sweep and the outbox gauges retry their
passes; the reaper's producer is started in its own task, so a Kafka that is away at
start holds up only what needs it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.consumer import project_events
from dispatcher.endpointhealth import EndpointHealth
from dispatcher.outbox import OutboxWorker
from dispatcher.reaper import Reaper
from dispatcher.retention import run_retention
from dispatcher.sender import client_session
from dispatcher.stats import report_outbox
from inferhook import metrics, tracing
from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.kafka import create_producer, ensure_topics
from inferhook.resilience import Dependency, retrying
from inferhook.settings import Settings
from inferhook.tracing import TraceParents
from schemas.topics import Topics
from store.files import PostgresFiles

log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event, *, project: bool = True,
              deliver: bool = True, housekeeping: bool = True) -> None:
    """Run the dispatcher's parts until `stop` is set (tests may leave some out)."""
    tracing.setup(settings.tracing, service="dispatcher")
    async with metrics.serving(settings.metrics):
        await _run(settings, stop, project=project, deliver=deliver, housekeeping=housekeeping)


async def _run(settings: Settings, stop: asyncio.Event, *, project: bool, deliver: bool,
               housekeeping: bool) -> None:
    engine = create_engine(settings.database)
    hooks = settings.webhook
    session = client_session(hooks.allow_nets, per_endpoint=hooks.endpoint_concurrency)
    traces = TraceParents()
    health = EndpointHealth(hooks, settings.kafka, Topics(settings.kafka.topic_prefix).events)
    outbox = OutboxWorker(engine, session, hooks, traces=traces, health=health)
    try:
        async with asyncio.TaskGroup() as group:
            if project:
                group.create_task(_project(settings, engine, stop, outbox, traces))
            if deliver:
                group.create_task(outbox.run(stop))
                group.create_task(report_outbox(engine, stop, interval=settings.metrics.refresh_seconds))
            if housekeeping:
                group.create_task(_reap(settings, engine, stop))
                group.create_task(run_retention(engine, stop, interval=hooks.retention_interval,
                                                files=PostgresFiles()))
    finally:
        await session.close()
        await engine.dispose()


async def _project(settings: Settings, engine: AsyncEngine, stop: asyncio.Event,
                   outbox: OutboxWorker, traces: TraceParents) -> None:
    """The projector, started over (from Postgres's offsets) whenever a server goes away."""
    topics = Topics(settings.kafka.topic_prefix)

    async def attempt() -> None:
        await ensure_topics(settings.kafka, [topics.events, topics.control])
        await project_events(settings, engine, stop, on_batch=outbox.wake, traces=traces)

    # A bare network error is asyncpg's connect: aiokafka wraps its own in KafkaError.
    await retrying("projector", attempt, stop=stop,
                   uses=(Dependency.KAFKA, Dependency.POSTGRES), network=Dependency.POSTGRES)


async def _reap(settings: Settings, engine: AsyncEngine, stop: asyncio.Event) -> None:
    """The reaper, once its producer got through to Kafka (it waits for it at start)."""
    topics, hooks = Topics(settings.kafka.topic_prefix), settings.webhook
    producer = await _started_producer(settings, topics, stop)
    if producer is None:
        return
    try:
        reaper = Reaper(engine, producer, topics, load_catalog(settings.models_dir),
                        interval=hooks.reaper_interval, grace=hooks.run_grace,
                        load_grace=hooks.load_grace)
        await reaper.run(stop)
    finally:
        await producer.stop()


async def _started_producer(settings: Settings, topics: Topics,
                            stop: asyncio.Event) -> AIOKafkaProducer | None:
    """A started producer with the topics in place; None when `stop` came first."""
    producer = create_producer(settings.kafka, client_id="inferhook-dispatcher")

    async def attempt() -> bool:
        await ensure_topics(settings.kafka, [topics.events, topics.control])
        await producer.start()
        return True

    try:
        started = await retrying("reaper producer", attempt, stop=stop, uses=(Dependency.KAFKA,))
    except BaseException:
        await producer.stop()
        raise
    if not started:
        await producer.stop()
        return None
    return producer

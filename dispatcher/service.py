"""The dispatcher process: projector, outbox worker, reaper and retention sweep, side by side."""

from __future__ import annotations

import asyncio
import logging

from dispatcher.consumer import project_events
from dispatcher.outbox import OutboxWorker
from dispatcher.reaper import Reaper
from dispatcher.retention import run_retention
from dispatcher.sender import client_session
from dispatcher.stats import report_outbox
from inferhook import metrics, tracing
from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.kafka import create_producer, ensure_topics
from inferhook.settings import Settings
from inferhook.tracing import TraceParents
from schemas.topics import Topics

log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event, *, project: bool = True,
              deliver: bool = True, housekeeping: bool = True) -> None:
    """Run the dispatcher's parts until `stop` is set (tests may leave some out)."""
    tracing.setup(settings.tracing, service="dispatcher")
    async with metrics.serving(settings.metrics):
        await _run(settings, stop, project=project, deliver=deliver, housekeeping=housekeeping)


async def _run(settings: Settings, stop: asyncio.Event, *, project: bool, deliver: bool,
               housekeeping: bool) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka, [topics.events, topics.control])
    engine = create_engine(settings.database)
    hooks = settings.webhook
    session = client_session(hooks.allow_nets, per_endpoint=hooks.endpoint_concurrency)
    traces = TraceParents()
    outbox = OutboxWorker(engine, session, hooks, traces=traces)
    producer = create_producer(settings.kafka, client_id="inferhook-dispatcher")
    await producer.start()
    try:
        async with asyncio.TaskGroup() as group:
            if project:
                group.create_task(project_events(settings, engine, stop, on_batch=outbox.wake,
                                                 traces=traces))
            if deliver:
                group.create_task(outbox.run(stop))
                group.create_task(report_outbox(engine, stop, interval=settings.metrics.refresh_seconds))
            if housekeeping:
                reaper = Reaper(engine, producer, topics, load_catalog(settings.models_dir),
                                interval=hooks.reaper_interval, grace=hooks.run_grace,
                                load_grace=hooks.load_grace)
                group.create_task(reaper.run(stop))
                group.create_task(run_retention(engine, stop, interval=hooks.retention_interval))
    finally:
        await producer.stop()
        await session.close()
        await engine.dispose()

"""The dispatcher process: the projector consumer and the outbox worker, side by side."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.outbox import OutboxWorker
from dispatcher.projector import apply_event
from dispatcher.sender import client_session
from inferhook.db import create_engine
from inferhook.kafka import ensure_topics
from inferhook.settings import Settings
from schemas.events import DecodeError, PredictionEvent
from schemas.topics import Topics

log = logging.getLogger(__name__)


async def project(settings: Settings, engine: AsyncEngine, outbox: OutboxWorker,
                  stop: asyncio.Event) -> None:
    """Consume inferhook.events and apply each batch in one transaction, then commit offsets."""
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka, [topics.events])
    consumer = AIOKafkaConsumer(
        topics.events, bootstrap_servers=settings.kafka.bootstrap,
        group_id=f"{topics.prefix}.dispatcher", client_id="inferhook-dispatcher",
        enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed", max_poll_records=500,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                continue
            async with engine.begin() as conn:
                for records in batches.values():
                    for record in records:
                        try:
                            event = PredictionEvent.decode(record.headers, record.value)
                        except DecodeError as exc:
                            log.warning("skipping undecodable event %s@%d: %s",
                                        record.topic, record.offset, exc)
                            continue
                        await apply_event(conn, event, settings.base_url)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
            outbox.wake()
    finally:
        await consumer.stop()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run projection and delivery until `stop` is set."""
    engine = create_engine(settings.database)
    session = client_session(settings.webhook.allow_nets)
    outbox = OutboxWorker(engine, session, settings.webhook)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(project(settings, engine, outbox, stop))
            group.create_task(outbox.run(stop))
    finally:
        await session.close()
        await engine.dispose()

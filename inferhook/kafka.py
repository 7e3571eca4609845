"""Kafka plumbing shared by the services: producers, topic creation, publishing events."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from opentelemetry.context import Context

from inferhook.settings import KafkaSettings
from inferhook.tracing import kafka_headers
from schemas.events import PredictionEvent

log = logging.getLogger(__name__)


def create_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    """A durable producer: acks from all in-sync replicas, idempotent, small linger to batch."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, client_id=client_id, acks="all",
        enable_idempotence=True, linger_ms=1, request_timeout_ms=15000,
        max_request_size=16 * 1024 * 1024,
    )


async def ensure_topics(settings: KafkaSettings, names: list[str]) -> None:
    """Create the topics that do not exist yet (safe to call from every process at start)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return
        topics = [NewTopic(n, settings.partitions, settings.replication_factor,
                           topic_configs={"max.message.bytes": str(16 * 1024 * 1024)})
                  for n in missing]
        with suppress(TopicAlreadyExistsError):  # another process created them first
            await admin.create_topics(topics)
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
    await _wait_for_leaders(settings, missing)


async def _wait_for_leaders(settings: KafkaSettings, names: list[str]) -> None:
    """Wait until new topics have partition leaders, so the first produce does not fail."""
    producer = create_producer(settings, client_id="inferhook-topic-check")
    await producer.start()
    try:
        for name in names:
            for _ in range(100):
                if await producer.partitions_for(name):
                    break
                await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def publish(producer: AIOKafkaProducer, topic: str, event: PredictionEvent, *,
                  trace_context: Context | None = None) -> None:
    """Write one event and return once the broker has it durably (acks=all).

    The record carries the `traceparent` of `trace_context` (default: the current context)
    when it holds a span (see inferhook.tracing).
    """
    await producer.send_and_wait(topic, event.value(), key=event.key(),
                                 headers=[*event.headers(), *kafka_headers(trace_context)])

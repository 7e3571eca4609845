"""Kafka plumbing shared by the services: producers, consumers, topic creation, publishing events."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaTimeoutError, TopicAlreadyExistsError
from opentelemetry.context import Context

from inferhook.settings import KafkaSettings
from inferhook.tracing import kafka_headers
from schemas.events import PredictionEvent

log = logging.getLogger(__name__)


# How long a send may take, and why these numbers. With idempotence on, aiokafka retries a
# batch on every retriable error (leader gone, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT) and
# never expires it; only a batch whose partition has *no* leader in the metadata fails, once
# REQUEST_TIMEOUT_MS has passed since it was created. A SIGKILLed broker is fenced by the
# controller after broker.session.timeout.ms (9 s), which then moves leadership to another
# in-sync replica and drops the dead one from every ISR; when the dead node was also the
# active controller, a new one is elected first (~3 s). So a failover lasts ~10-20 s.
REQUEST_TIMEOUT_MS = 30_000
"""Per produce request: how long the leader may wait for the in-sync replicas (and we for its
answer), and how long a batch may wait for a partition without leader. Above a failover."""
RETRY_BACKOFF_MS = 250
"""Pause between retries and metadata refreshes while a leader is being elected."""
DELIVERY_TIMEOUT_S = 60.0
"""Bound on one `send_and_wait`: a failover plus one full request, then KafkaTimeoutError."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest record our producers send and our topics take (`max.message.bytes`). A request
carries the input with its files inlined as base64, so ingest refuses (413) an input that
would not fit before it writes anything (see ingest.inputs)."""


class DurableProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An AIOKafkaProducer whose `send_and_wait` returns only once the record is acked by the
    in-sync replicas (acks=all, min.insync.replicas on the topic), or raises a KafkaError.

    Retries ride out a leader election. When the record is still not acked after
    `delivery_timeout_s` (e.g. fewer than min.insync.replicas brokers are up) the call raises
    KafkaTimeoutError: the caller must not report success, and must treat the record as maybe
    written (the producer keeps retrying it in the background, without duplicates).
    """

    def __init__(self, *, delivery_timeout_s: float = DELIVERY_TIMEOUT_S, **config: Any) -> None:
        super().__init__(**config)
        self.delivery_timeout_s = delivery_timeout_s

    async def send_and_wait(self, topic: str, value: bytes | None = None,
                            key: bytes | None = None, partition: int | None = None,
                            timestamp_ms: int | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> Any:
        try:
            async with asyncio.timeout(self.delivery_timeout_s):
                return await super().send_and_wait(topic, value, key, partition, timestamp_ms,
                                                   headers)
        except TimeoutError as exc:
            raise KafkaTimeoutError(
                f"{topic}: not acknowledged by the in-sync replicas within "
                f"{self.delivery_timeout_s:g}s (it may still be written)") from exc


def create_producer(settings: KafkaSettings, *, client_id: str,
                    delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
                    request_timeout_ms: int = REQUEST_TIMEOUT_MS) -> AIOKafkaProducer:
    """A durable producer (see DurableProducer): acks from all in-sync replicas, idempotent,
    small linger to batch; its sends survive a leader election and are bounded in time."""
    return DurableProducer(
        bootstrap_servers=settings.bootstrap, client_id=client_id, acks="all",
        enable_idempotence=True, linger_ms=1, request_timeout_ms=request_timeout_ms,
        retry_backoff_ms=RETRY_BACKOFF_MS, max_request_size=MAX_MESSAGE_BYTES,
        delivery_timeout_s=delivery_timeout_s,
    )


def create_consumer(settings: KafkaSettings, *, client_id: str, group_id: str | None,
                    **options: Any) -> AIOKafkaConsumer:
    """A consumer as every service of ours reads: no auto-commit (the caller commits an
    offset once its effect is durable), transactional records only once committed
    (read_committed), and a group member with no committed offset starts at the beginning.

    `group_id` None reads without a group (the caller assigns and seeks); group names come
    from `schemas.topics.Topics`. `options` are further aiokafka settings (poll sizes,
    session timeouts) and may override the defaults.
    """
    config: dict[str, Any] = {"enable_auto_commit": False, "auto_offset_reset": "earliest",
                              "isolation_level": "read_committed", **options}
    return AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, client_id=client_id,
                            group_id=group_id, **config)


def topic_configs(settings: KafkaSettings) -> dict[str, str]:
    """Configs of the topics we create: with replicas, an acks=all write must reach two of
    them (min.insync.replicas 2), so an acked record survives losing any one broker."""
    configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    if settings.replication_factor > 1:
        configs["min.insync.replicas"] = str(min(2, settings.replication_factor))
    return configs


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
                           topic_configs=topic_configs(settings))
                  for n in missing]
        with suppress(TopicAlreadyExistsError):  # another process created them first
            await admin.create_topics(topics)
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
    await _wait_for_leaders(settings, missing)


async def _wait_for_leaders(settings: KafkaSettings, names: list[str],
                            timeout: float = 30.0) -> None:
    """Wait until every partition of the new topics has a leader in the metadata of the
    broker we ask, so the first produce does not wait (with several brokers, each learns of a
    new topic from the controller on its own)."""
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap, client_id="inferhook-topic-check")
    await client.bootstrap()
    try:
        deadline = time.monotonic() + timeout
        while True:
            metadata = await client.fetch_all_metadata()
            waiting = [n for n in names
                       if not metadata.partitions_for_topic(n)
                       or metadata.available_partitions_for_topic(n)
                       != metadata.partitions_for_topic(n)]
            if not waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        if waiting:
            log.warning("topics %s have partitions without leader after %gs",
                        ", ".join(waiting), timeout)
    finally:
        await client.close()


async def publish(producer: AIOKafkaProducer, topic: str, event: PredictionEvent, *,
                  trace_context: Context | None = None) -> None:
    """Write one event and return once the broker has it durably (acks=all).

    The record carries the `traceparent` of `trace_context` (default: the current context)
    when it holds a span (see inferhook.tracing).
    """
    await producer.send_and_wait(topic, event.value(), key=event.key(),
                                 headers=[*event.headers(), *kafka_headers(trace_context)])

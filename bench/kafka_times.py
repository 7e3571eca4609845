"""The broker's append time of records, for the hop breakdown (bench.hops).

`stamped` makes topics stamp records with LogAppendTime for the length of a block and
notes where each partition ended when it began; `Stamps.read` then gives the stamps of
the records written since. AlterConfigs replaces a topic's whole dynamic config, so the
configs our topics are created with go along, and are what is put back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient

from inferhook.kafka import topic_configs
from inferhook.settings import KafkaSettings

LOG_APPEND_TIME = 1
"""A record's timestamp_type when the broker stamped it."""
Headers = list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]


async def _stamp(bootstrap: str, topics: list[str], kind: str) -> None:
    configs = {**topic_configs(KafkaSettings(bootstrap=bootstrap)),
               "message.timestamp.type": kind}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)
                                   for topic in topics])
    finally:
        await admin.close()
    await asyncio.sleep(1.0)  # the brokers apply a topic's new config a moment later


@dataclass
class Stamps:
    """A reader of the records written to the stamped topics since the block began."""

    consumer: AIOKafkaConsumer
    since: dict[TopicPartition, int]

    async def read(self, topic: str, keys: set[str],
                   wanted: Callable[[Headers], bool] = lambda _: True) -> dict[str, float]:
        """Append time (seconds) of the last broker-stamped record of each key in `keys`
        written to `topic` since the block began, among those whose headers are `wanted`."""
        partitions = [tp for tp in self.since if tp.topic == topic]
        stop = await self.consumer.end_offsets(partitions)
        for tp in partitions:
            self.consumer.seek(tp, self.since[tp])
        found: dict[str, float] = {}
        while any([await self.consumer.position(tp) < stop[tp] for tp in partitions]):
            batches = await self.consumer.getmany(*partitions, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    key = (record.key or b"").decode()
                    if (key in keys and record.timestamp_type == LOG_APPEND_TIME
                            and wanted(record.headers)):
                        found[key] = record.timestamp / 1000
        return found


async def _partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="inferhook-bench")
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        return [TopicPartition(topic, p) for topic in topics
                for p in sorted(metadata.partitions_for_topic(topic) or [])]
    finally:
        await client.close()


@asynccontextmanager
async def stamped(bootstrap: str, topics: list[str]) -> AsyncIterator[Stamps]:
    """Records written to `topics` inside the block carry the broker's append time."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", max_poll_records=5000)
    await consumer.start()
    await _stamp(bootstrap, topics, "LogAppendTime")
    try:
        partitions = await _partitions(bootstrap, topics)
        consumer.assign(partitions)
        yield Stamps(consumer, await consumer.end_offsets(partitions))
    finally:
        await _stamp(bootstrap, topics, "CreateTime")
        await consumer.stop()

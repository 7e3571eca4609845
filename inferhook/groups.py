"""The executors group as Kafka shows it: each model's backlog and the executors serving it.

The backlog of a model is, over the partitions of its request topic, the end offset minus
the executors group's committed offset (the beginning of the partition when nothing was
committed yet). Executors commit an offset only once its outcome is durable, so the
backlog counts requests waiting and running, and is 0 only when the model has nothing
to do. The executors of a model are the group's members subscribed to its request topic.
This is what the supervisor scales on, what `GET /v1/executors` shows, and what a KEDA
ScaledObject on the same group and topic sees (deploy/kubernetes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from inferhook.kafka import create_consumer
from inferhook.settings import KafkaSettings
from schemas.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLoad:
    """One model's backlog and executors, as the executors group shows them."""

    model: str
    backlog: int
    """Requests not committed by the executors group (waiting or running)."""
    executors: int
    """Members of the executors group subscribed to the model's request topic."""
    uncommitted: Mapping[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    """Each partition's records not committed (the backlog): from the group's committed
    offset (or the partition's beginning) up to the end offset, end excluded."""


class GroupWatch:
    """Reads the executors group's offsets and members (open it with `start`, end with `close`)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.topics = Topics(kafka.topic_prefix)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        self._offsets: AIOKafkaConsumer = create_consumer(
            kafka, client_id="inferhook-group-watch", group_id=None)

    async def start(self) -> None:
        """Connect to Kafka."""
        await self._admin.start()
        await self._offsets.start()

    async def close(self) -> None:
        """Disconnect."""
        await self._offsets.stop()
        await self._admin.close()

    def request_topics(self, model: str) -> list[str]:
        """The request topics of one model: one per priority, all counted."""
        return list(self.topics.all_requests(model))

    async def read(self, models: Iterable[str]) -> dict[str, ModelLoad]:
        """Each model's backlog and executors now."""
        wanted = {topic: model for model in models for topic in self.request_topics(model)}
        described = await self._admin.describe_topics(list(wanted))
        partitions = [TopicPartition(topic["topic"], part["partition"]) for topic in described
                      if topic["topic"] in wanted and not topic["error_code"]
                      for part in topic["partitions"]]
        ends: dict[TopicPartition, int] = (
            await self._offsets.end_offsets(partitions) if partitions else {})
        starts: dict[TopicPartition, int] = (
            await self._offsets.beginning_offsets(partitions) if partitions else {})
        committed = await self._admin.list_consumer_group_offsets(self.topics.executors_group)
        backlog = dict.fromkeys(wanted.values(), 0)
        ranges: dict[str, dict[TopicPartition, tuple[int, int]]] = {m: {} for m in backlog}
        for tp in partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            backlog[wanted[tp.topic]] += max(0, ends[tp] - position)
            if ends[tp] > position:
                ranges[wanted[tp.topic]][tp] = (position, ends[tp])
        members = await self._subscriptions()
        return {model: ModelLoad(model, backlog[model], sum(
            1 for topics in members if any(t in topics for t in self.request_topics(model))),
            ranges[model]) for model in backlog}

    async def _subscriptions(self) -> list[set[str]]:
        """The topics each member of the executors group subscribes to."""
        (response,) = await self._admin.describe_consumer_groups([self.topics.executors_group])
        found: list[set[str]] = []
        for group in response.groups:
            for member in _members(group):
                try:
                    metadata = ConsumerProtocolMemberMetadata.decode(member)
                except Exception:  # another protocol's member: not ours to count
                    continue
                found.append(set(metadata.subscription))
        return found


def _members(group: Any) -> list[bytes]:
    """The member metadata of one DescribeGroups entry (its layout varies by version: the
    members are the one list in it, each member's metadata its first bytes field)."""
    listed = next((part for part in group if isinstance(part, list)), [])
    out: list[bytes] = []
    for member in listed:
        raw = next((part for part in member if isinstance(part, bytes)), None)
        if raw:
            out.append(raw)
    return out

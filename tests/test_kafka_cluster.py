"""A real 3-broker KRaft cluster: RF 3 and min.insync.replicas 2 on our topics, producers that
ride out a leader's crash without losing an acked record, and refuse to ack below min ISR."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from cli.infra import LocalKafkaCluster
from inferhook.kafka import create_producer, ensure_topics
from inferhook.settings import KafkaSettings

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cluster(kafka_cluster: LocalKafkaCluster) -> Iterator[LocalKafkaCluster]:
    """The session's cluster, with any node a test killed started again afterwards."""
    yield kafka_cluster
    if any(node.running_pid() is None for node in kafka_cluster.nodes):
        kafka_cluster.start()


@pytest.fixture
async def admin(kafka_cluster: LocalKafkaCluster) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def cluster_settings(cluster: LocalKafkaCluster) -> KafkaSettings:
    return KafkaSettings(bootstrap=cluster.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                         partitions=1, replication_factor=3)


async def new_topic(settings: KafkaSettings) -> str:
    name = f"{settings.topic_prefix}.cluster"
    await ensure_topics(settings, [name])
    return name


async def configs(admin: AIOKafkaAdminClient, kind: ConfigResourceType, name: str) -> dict[str, str]:
    """The effective configs of one topic or broker, as name -> value."""
    found: dict[str, str] = {}
    for response in await admin.describe_configs([ConfigResource(kind, name)]):
        for resource in response.to_object()["resources"]:
            assert resource["error_code"] == 0, resource
            for entry in resource["config_entries"]:
                found[entry["config_names"]] = entry["config_value"]
    return found


async def leader_of(admin: AIOKafkaAdminClient, topic: str) -> int:
    """The partition's leader, asking again while the admin client's node is the one down."""
    for _ in range(40):
        try:
            (described,) = await admin.describe_topics([topic])
        except KafkaError:
            await asyncio.sleep(0.5)
            continue
        (partition,) = described["partitions"]
        return int(partition["leader"])
    raise TimeoutError(f"no broker described {topic}")


async def test_topics_and_internal_topics_are_replicated_three_ways(
        cluster: LocalKafkaCluster, admin: AIOKafkaAdminClient) -> None:
    assert cluster.bootstrap.count(",") == 2
    topic = await new_topic(cluster_settings(cluster))
    (described,) = await admin.describe_topics([topic])
    for partition in described["partitions"]:
        assert sorted(partition["replicas"]) == [1, 2, 3]
        assert sorted(partition["isr"]) == [1, 2, 3]
    assert (await configs(admin, ConfigResourceType.TOPIC, topic))["min.insync.replicas"] == "2"
    for node in cluster.nodes:
        broker = await configs(admin, ConfigResourceType.BROKER, str(node.node_id))
        assert {key: broker[key] for key in (
            "default.replication.factor", "min.insync.replicas",
            "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr", "unclean.leader.election.enable",
            "auto.create.topics.enable")} == {
            "default.replication.factor": "3", "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2", "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "false"}


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of partition 0 of `topic`, from the start to the current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


async def test_acked_sends_survive_the_leader_being_killed(
        cluster: LocalKafkaCluster, admin: AIOKafkaAdminClient) -> None:
    settings = cluster_settings(cluster)
    topic = await new_topic(settings)
    acked: list[bytes] = []
    acked_at: list[float] = []
    raised: list[BaseException] = []
    stop = asyncio.Event()

    async def sender(lane: int, producer: Any) -> None:
        n = 0
        while not stop.is_set():
            value = f"{lane}-{n}".encode()
            n += 1
            try:
                await producer.send_and_wait(topic, value, key=value)
            except KafkaError as exc:
                raised.append(exc)
            else:
                acked.append(value)
                acked_at.append(time.monotonic())
            await asyncio.sleep(0.01)

    producer = create_producer(settings, client_id="test-failover")
    await producer.start()
    try:
        lanes = [asyncio.create_task(sender(lane, producer)) for lane in range(4)]
        await asyncio.sleep(1.0)
        leader = await leader_of(admin, topic)
        before = len(acked)
        assert before > 0, "the cluster takes writes before the kill"
        killed_at = time.monotonic()
        cluster.kill(leader - 1)
        while not [t for t in acked_at if t > killed_at + 0.5]:
            assert time.monotonic() - killed_at < 60, "no send succeeded after the leader died"
            await asyncio.sleep(0.1)
        failover = min(t for t in acked_at if t > killed_at + 0.5) - killed_at
        assert await leader_of(admin, topic) != leader
        await asyncio.to_thread(cluster.start_node, leader - 1)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*lanes)
    finally:
        await producer.stop()
    print(f"\n{len(acked)} sends acked ({before} before the kill), {len(raised)} raised, "
          f"writes resumed {failover:.1f}s after the leader was killed")
    read = await read_all(cluster.bootstrap, topic)
    missing = set(acked) - set(read)
    assert not missing, f"{len(missing)} acked records are gone, e.g. {sorted(missing)[:5]}"
    assert len(read) == len(set(read)), "the idempotent producer wrote a record twice"
    assert not raised, f"sends failed during the failover: {raised[:3]}"


async def test_no_ack_with_two_of_three_brokers_down(
        cluster: LocalKafkaCluster, admin: AIOKafkaAdminClient) -> None:
    settings = cluster_settings(cluster)
    topic = await new_topic(settings)
    producer = create_producer(settings, client_id="test-min-isr", delivery_timeout_s=4.0,
                               request_timeout_ms=2000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        leader = await leader_of(admin, topic)
        for node in cluster.nodes:
            if node.node_id != leader:
                node.kill()
        clock = time.monotonic()
        with pytest.raises(KafkaError) as caught:
            await producer.send_and_wait(topic, b"alone")
        took = time.monotonic() - clock
        print(f"\nwith one broker of three the send raised {caught.value!r} after {took:.1f}s")
        assert took < 15
        await asyncio.to_thread(cluster.start)
        await producer.send_and_wait(topic, b"after")
    finally:
        await producer.stop()
    read = await read_all(cluster.bootstrap, topic)
    assert read[0] == b"before" and b"after" in read

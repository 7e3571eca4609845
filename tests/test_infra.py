"""The local servers the dev stack and the tests run on: start, stop, restart, clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from cli.infra import InfraError, LocalKafka, LocalKafkaCluster, LocalPostgres
from cli.infra.kafka import new_cluster_id, require_tool, resolve_jars
from cli.infra.postgres import find_bin_dir
from cli.main import parser
from cli.stack import dev_kafka_env, local_kafka
from inferhook.settings import REPO_ROOT, KafkaSettings, Settings


async def test_postgres_restarts_on_its_data_dir(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg", durable=False)
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.url)
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        await conn.close()
    finally:
        server.stop()
    assert server.running_pid() is None
    again = LocalPostgres(tmp_path / "pg", durable=False)
    await asyncio.to_thread(again.start)
    try:
        assert again.port == server.port, "a restart keeps the port it had"
        conn = await asyncpg.connect(again.url)
        assert await conn.fetchval("SELECT x FROM kept") == 42
        await conn.close()
    finally:
        again.stop()


async def test_kafka_restarts_and_serves_clients(tmp_path: Path) -> None:
    jars = resolve_jars(REPO_ROOT / ".state" / "kafka-jars")
    for _ in range(2):
        kafka = LocalKafka(tmp_path / "kafka", jars)
        await asyncio.to_thread(kafka.start)
        try:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
            await producer.start()
            try:
                metadata = await producer.client.fetch_all_metadata()
                assert metadata.brokers(), "the broker answers metadata requests"
            finally:
                await producer.stop()
        finally:
            kafka.stop()
        assert kafka.running_pid() is None


def test_missing_tool_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InfraError) as caught:
        require_tool("java")
    message = str(caught.value)
    assert "install Java" in message
    assert "docker compose up" in message


def test_postgres_binaries_are_found() -> None:
    assert (find_bin_dir() / "postgres").exists()


def test_cluster_ids_never_look_like_options() -> None:
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)


def test_dev_kafka_is_one_broker_or_a_cluster_on_fixed_ports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERHOOK_KAFKA_BOOTSTRAP", raising=False)
    settings = Settings(state_dir=tmp_path)
    single = local_kafka(settings)
    assert isinstance(single, LocalKafka), "nothing runs: the single dev broker"
    assert single.bootstrap == "127.0.0.1:9092"
    assert dev_kafka_env(settings) == {}, "services keep the default bootstrap and RF"
    cluster = local_kafka(settings, 3)
    assert isinstance(cluster, LocalKafkaCluster)
    assert cluster.bootstrap == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
    assert [(n.node_id, n.replication_factor) for n in cluster.nodes] == [(1, 3), (2, 3), (3, 3)]
    external = Settings(state_dir=tmp_path, kafka=KafkaSettings(bootstrap="kafka:9092"))
    assert local_kafka(external, 3) is None
    assert parser().parse_args(["infra", "up", "--brokers", "3"]).brokers == 3
    assert parser().parse_args(["infra", "status"]).brokers is None


def test_cluster_refuses_a_folder_of_a_larger_cluster(tmp_path: Path) -> None:
    (tmp_path / "node-4").mkdir()
    with pytest.raises(InfraError, match="larger cluster"):
        LocalKafkaCluster(tmp_path, tmp_path / "jars", brokers=3).start()

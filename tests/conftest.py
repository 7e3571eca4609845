"""Real Kafka and Postgres for the tests, and the inferhook services on top of them.

Servers are session-scoped local processes on free ports with their own data folders
(so a dev stack on the same machine is left alone). Set INFERHOOK_TEST_KAFKA_BOOTSTRAP
and/or INFERHOOK_TEST_DATABASE_URL to use servers of your own, or INFERHOOK_TEST_DOCKER=1
to start them with testcontainers where a Docker engine answers. Each test gets its own
topic prefix and clean tables.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from ipaddress import ip_network
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from sqlalchemy import text

from cli.infra import LocalKafka, LocalKafkaCluster, LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.stack import build_models
from inferhook.db import create_engine, migrate
from inferhook.settings import REPO_ROOT, DatabaseSettings, KafkaSettings, Settings, WebhookSettings
from tests.support import Receiver, Stack, docker_available, free_port

TABLES = ("predictions", "prediction_events", "webhook_deliveries", "api_keys",
          "webhook_secrets", "idempotency_keys", "webhook_attempts", "dispatcher_offsets",
          "parked_events", "files", "webhook_endpoints")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka broker for the whole session."""
    if given := os.environ.get("INFERHOOK_TEST_KAFKA_BOOTSTRAP"):
        yield given
        return
    if os.environ.get("INFERHOOK_TEST_DOCKER") == "1" and docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    # One broker for the whole session, and every test makes topics of its own prefix (three
    # request topics per model since priorities): 512 MB of heap ran out of metadata room
    # late in the suite (OutOfMemoryError in the raft thread).
    kafka = LocalKafka(tmp_path_factory.mktemp("kafka"), resolve_jars(REPO_ROOT / ".state" / "kafka-jars"),
                       heap="2g")
    kafka.start()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """A 3-node KRaft cluster (RF 3, min.insync.replicas 2) of its own, started only for the
    tests that ask for it; a test that kills nodes starts them again before it ends."""
    cluster = LocalKafkaCluster(tmp_path_factory.mktemp("kafka-cluster"),
                                resolve_jars(REPO_ROOT / ".state" / "kafka-jars"), brokers=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated PostgreSQL database for the whole session."""
    if given := os.environ.get("INFERHOOK_TEST_DATABASE_URL"):
        url = given
        migrate(DatabaseSettings(url=SecretStr(url)))
        yield url
        return
    if os.environ.get("INFERHOOK_TEST_DOCKER") == "1" and docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            url = container.get_connection_url()
            migrate(DatabaseSettings(url=SecretStr(url)))
            yield url
        return
    postgres = LocalPostgres(tmp_path_factory.mktemp("postgres"), durable=False)
    postgres.start()
    try:
        migrate(DatabaseSettings(url=SecretStr(postgres.url)))
        yield postgres.url
    finally:
        postgres.stop()


@pytest.fixture(scope="session")
def built_models() -> Path:
    """The model folders with their ONNX files built."""
    settings = Settings()
    build_models(settings)
    return settings.models_dir


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str, built_models: Path) -> Iterator[Settings]:
    """Settings for one test: its own topic prefix and ports, short webhook retries. The
    prefix's topics are deleted after the test."""
    made = Settings(
        host="127.0.0.1", port=free_port(), models_dir=built_models, dev=True,
        kafka=KafkaSettings(bootstrap=kafka_bootstrap,
                            topic_prefix=f"t{uuid.uuid4().hex[:10]}", partitions=2),
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=5),
        webhook=WebhookSettings(retry_schedule=[0, 0.2, 0.5, 1.0], timeout=3.0,
                                allow_nets=[ip_network("127.0.0.1/32")]),
    )
    yield made
    drop_topics(made.kafka)


def drop_topics(kafka: KafkaSettings) -> None:
    """Delete the topics of one test's prefix, so the session broker's metadata does not
    grow with every test. Best effort, in a thread of its own (a test's event loop is gone
    by now): a broker the test left stopped keeps them."""
    async def drop() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            mine = [name for name in await admin.list_topics()
                    if name.startswith(f"{kafka.topic_prefix}.")]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    def run() -> None:
        with suppress(Exception):
            asyncio.run(drop())

    worker = threading.Thread(target=run, name="drop-topics")
    worker.start()
    worker.join(timeout=30)


@pytest.fixture
async def clean_db(settings: Settings) -> None:
    """Empty every table before the test."""
    engine = create_engine(settings.database)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    finally:
        await engine.dispose()


@pytest.fixture
async def stack(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    """Ingest, one executor and the dispatcher running in this test's event loop."""
    async with Stack.running(settings) as running:
        yield running


@pytest.fixture
async def idle_stack(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    """Ingest and the dispatcher without an executor: predictions stay pending."""
    async with Stack.running(settings, executor=False) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records the webhooks it receives."""
    async with Receiver.running() as running:
        yield running



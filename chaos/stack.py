"""The private stack of one chaos run: Kafka, PostgreSQL (fsync on) and the three services.

Everything lives under `.state/chaos/<run>/` (wiped at start) on free ports; ingest keeps its
port across restarts. The services' environment is the benchmark stack's (bench/stack.py:
private topic prefix, webhooks to 127.0.0.1 allowed, rate limits out of the way) plus a short
webhook retry schedule and, for the cluster, replication factor 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from bench.stack import BenchStack
from chaos.config import RunConfig
from chaos.servers import Brokers
from chaos.services import Service
from cli.infra import LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.infra.process import free_port
from inferhook.db import create_engine, migrate
from inferhook.settings import REPO_ROOT, DatabaseSettings
from store.accounts import create_key

STATE = REPO_ROOT / ".state" / "chaos"
OWNER = "chaos"
MODELS = ("inferhook/digits", "inferhook/spin")


@dataclass
class ChaosStack:
    """Where the servers and services of one run are, and how to reach the API."""

    root: Path
    brokers: Brokers
    postgres: LocalPostgres
    port: int
    retry_schedule: str
    key: str = ""
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def create(cls, run_name: str, config: RunConfig, state: Path = STATE) -> ChaosStack:
        """Lay out (and wipe) the run's folder `state/run_name`; nothing is started yet."""
        root = state / run_name
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        jars = resolve_jars(REPO_ROOT / ".state" / "kafka-jars")
        return cls(root=root, brokers=Brokers(config.scenario, root / "kafka", jars),
                   postgres=LocalPostgres(root / "postgres", durable=True), port=free_port(),
                   retry_schedule=config.retry_schedule)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """INFERHOOK_* settings shared by the three services."""
        bench = BenchStack(base_url=self.base_url, key=self.key, kafka_bootstrap=self.brokers.bootstrap,
                           database_url=self.postgres.url, topic_prefix="chaos", owner=OWNER)
        return bench.env(
            INFERHOOK_STATE_DIR=str(self.root), INFERHOOK_DEV="1", INFERHOOK_PORT=str(self.port),
            INFERHOOK_WEBHOOK_RETRY_SCHEDULE=self.retry_schedule,
            INFERHOOK_KAFKA_REPLICATION_FACTOR=str(self.brokers.replication_factor),
        )

    async def start(self) -> None:
        """Start the servers, migrate, make a key, spawn the services (not waited for)."""
        await asyncio.to_thread(self.brokers.start)
        await asyncio.to_thread(self.postgres.start)
        database = DatabaseSettings(url=SecretStr(self.postgres.url), pool_size=2)
        await asyncio.to_thread(migrate, database)
        engine = create_engine(database)
        try:
            self.key = await create_key(engine, OWNER)
        finally:
            await engine.dispose()
        env = self.env()
        for name, args in (("ingest", ()), ("executor", MODELS), ("dispatcher", ())):
            service = Service(name, args, env, self.root / "logs" / f"{name}.log")
            self.services[name] = service
            service.start()

    def stop(self) -> None:
        """Stop every process this run started, services first (together); never raises."""
        stoppers = [threading.Thread(target=service.stop) for service in self.services.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        with contextlib.suppress(Exception):
            self.brokers.stop()
        with contextlib.suppress(Exception):
            self.postgres.stop()

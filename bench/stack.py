"""A private inferhook stack for one benchmark run, or a running one given by URL and key.

The private stack gets its own Kafka and PostgreSQL on free ports with their data under
`.state/bench/` (wiped at start), a unique topic prefix, and ingest, executor and
dispatcher as subprocesses started the way `inferhook up` starts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cli.infra import LocalKafka, LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.infra.process import free_port, port_open, spawn, terminate, wait_until
from inferhook.settings import REPO_ROOT

STATE = REPO_ROOT / ".state" / "bench"
SERVICES = ("ingest", "executor", "dispatcher")


@dataclass
class Service:
    """One service subprocess and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs; raises with its log's tail once it has exited."""
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
        return True


@dataclass
class BenchStack:
    """Where the stack under test is, and the processes the benchmark started for it."""

    base_url: str
    key: str
    kafka_bootstrap: str
    database_url: str
    topic_prefix: str
    owner: str = "bench"
    durable_postgres: bool = True
    services: dict[str, Service] = field(default_factory=dict)
    kafka: LocalKafka | None = None
    postgres: LocalPostgres | None = None

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a service process of this stack (INFERHOOK_* settings)."""
        env = dict(os.environ)
        env.update({
            "INFERHOOK_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "INFERHOOK_DATABASE_URL": self.database_url,
            "INFERHOOK_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "INFERHOOK_WEBHOOK_ALLOW_NETS": "127.0.0.1/32",
            "INFERHOOK_STATE_DIR": str(STATE),
            # The per-key rate limits stay on (their cost is part of every request) but
            # high enough that the benchmarks measure the service, not the limiter.
            "INFERHOOK_API_CREATE_RATE": "1000000", "INFERHOOK_API_CREATE_BURST": "1000000",
            "INFERHOOK_API_READ_RATE": "1000000", "INFERHOOK_API_READ_BURST": "1000000",
        })
        env.update(overrides)
        return env

    def spawn_service(self, name: str, *args: str, log_name: str | None = None,
                      **env: str) -> Service:
        """Start `inferhook <name> [args]` as a subprocess of this stack (not yet ready)."""
        log = STATE / "logs" / f"{log_name or name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        proc = spawn([sys.executable, "-m", "cli", name, *args], log=log,
                     env=self.env(**env))
        return Service(name, proc, log)

    def cli(self, *args: str) -> str:
        """Run an `inferhook` command against this stack and return its stdout."""
        done = subprocess.run([sys.executable, "-m", "cli", *args], env=self.env(),
                              capture_output=True, text=True, check=True)
        return done.stdout

    def stop(self) -> None:
        """Stop every process this benchmark started, services first."""
        for service in self.services.values():
            terminate(service.pid, timeout=15)
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()


def start_private(*, durable_postgres: bool = True) -> BenchStack:
    """Start Kafka, PostgreSQL (fsync on unless told otherwise) and the three services."""
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(parents=True)
    os.chmod(STATE, 0o755)
    kafka = LocalKafka(STATE / "kafka", resolve_jars(REPO_ROOT / ".state" / "kafka-jars"))
    postgres = LocalPostgres(STATE / "postgres", durable=durable_postgres)
    stack = BenchStack(base_url="", key="", kafka_bootstrap="", database_url="",
                       topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
                       durable_postgres=durable_postgres, kafka=kafka, postgres=postgres)
    try:
        kafka.start()
        postgres.start()
        port = free_port()
        stack.kafka_bootstrap, stack.database_url = kafka.bootstrap, postgres.url
        stack.base_url = f"http://127.0.0.1:{port}"
        stack.cli("migrate")
        stack.key = stack.cli("keys", "create", "--owner", stack.owner).strip().splitlines()[-1]
        for name in SERVICES:
            # The executor serves the model the benchmarks send (dedicated mode).
            args = ("inferhook/digits",) if name == "executor" else ()
            stack.services[name] = stack.spawn_service(name, *args, INFERHOOK_PORT=str(port))
        # Ingest is ready when it listens; the executor and dispatcher prove themselves
        # when the runner's warm-up predictions come out finished.
        ingest = stack.services["ingest"]
        wait_until(lambda: all(s.alive() for s in stack.services.values()) and port_open(port),
                   timeout=120, what="ingest", log=ingest.log)
    except BaseException:
        stack.stop()
        raise
    return stack


def external(base_url: str, key: str, kafka_bootstrap: str, database_url: str,
             topic_prefix: str, owner: str) -> BenchStack:
    """A stack someone else runs (e.g. `make up`); memory figures are then not measured."""
    return BenchStack(base_url=base_url.rstrip("/"), key=key, kafka_bootstrap=kafka_bootstrap,
                      database_url=database_url, topic_prefix=topic_prefix, owner=owner)

"""A private inferhook stack for one benchmark run, or a running one given by URL and key.

The private stack gets its own Kafka and PostgreSQL on free ports with their data under
`.state/bench/` (wiped at start), a unique topic prefix, and ingest, executor and
dispatcher as subprocesses started the way `inferhook up` starts them.

Its PostgreSQL records commit timestamps (the hop breakdown reads when a projection
committed) and preloads pg_stat_statements with tracking off (the profile benchmark turns
it on for its window); neither changes what the services do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from cli.infra import LocalKafka, LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.infra.postgres import find_bin_dir
from cli.infra.process import free_port, port_open, spawn, terminate, wait_until
from inferhook.settings import REPO_ROOT

STATE = REPO_ROOT / ".state" / "bench"
SERVICES = ("ingest", "executor", "dispatcher")
SERVICE_ARGS = {"executor": ("inferhook/digits",)}
"""The executor serves the model the benchmarks send (dedicated mode)."""


@dataclass
class Service:
    """One service subprocess and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    args: tuple[str, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)
    """The environment it was started with beyond the stack's (so it can be started again)."""

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
    instrumented: tuple[str, ...] = ()
    """PostgreSQL settings this benchmark made (see `instrument`)."""
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
        return Service(name, proc, log, args, env)

    def stop_service(self, name: str) -> None:
        """Stop one of the stack's services (SIGTERM: it finishes what it holds)."""
        terminate(self.services[name].pid, timeout=15)

    def restart_service(self, name: str) -> Service:
        """Start a stopped service again, as it was started (its log starts over)."""
        old = self.services[name]
        self.services[name] = self.spawn_service(name, *old.args, log_name=old.log.stem,
                                                 **old.overrides)
        return self.services[name]

    def processes(self) -> dict[str, int]:
        """The pid of each process of the stack this benchmark started: the three
        services, Kafka, and PostgreSQL (its server's parent: backends are below it)."""
        pids = {name: service.pid for name, service in self.services.items()}
        if self.kafka is not None and self.kafka.pid is not None:
            pids["kafka"] = self.kafka.pid
        if self.postgres is not None and self.postgres.pid is not None:
            pids["postgres"] = self.postgres.pid
        return pids

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


INSTRUMENTATION = {"track_commit_timestamp": "on"}
STATEMENTS = "pg_stat_statements"
"""Loaded but off (tracking `none`): `bench.statements.tracked_statements` turns it on."""


def instrument(postgres: LocalPostgres) -> tuple[str, ...]:
    """Turn on commit timestamps and load pg_stat_statements (when installed), which takes
    a restart; return the settings made, for the run's facts."""
    settings = dict(INSTRUMENTATION)
    loads = (find_bin_dir().parent / "lib" / f"{STATEMENTS}.so").exists()
    if loads:
        settings["shared_preload_libraries"] = STATEMENTS

    async def alter(statements: list[str]) -> None:
        conn = await asyncpg.connect(postgres.url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(alter([f"ALTER SYSTEM SET {k} = '{v}'" for k, v in settings.items()]))
    postgres.stop()
    postgres.start()
    if loads:  # its own settings exist only once it is loaded
        asyncio.run(alter([f"CREATE EXTENSION IF NOT EXISTS {STATEMENTS}",
                           f"ALTER SYSTEM SET {STATEMENTS}.track = 'none'",
                           "SELECT pg_reload_conf()"]))
        settings[f"{STATEMENTS}.track"] = "none"
    return tuple(f"{k}={v}" for k, v in settings.items())


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
        stack.instrumented = instrument(postgres)
        port = free_port()
        stack.kafka_bootstrap, stack.database_url = kafka.bootstrap, postgres.url
        stack.base_url = f"http://127.0.0.1:{port}"
        stack.cli("migrate")
        stack.key = stack.cli("keys", "create", "--owner", stack.owner).strip().splitlines()[-1]
        for name in SERVICES:
            stack.services[name] = stack.spawn_service(name, *SERVICE_ARGS.get(name, ()),
                                                       INFERHOOK_PORT=str(port))
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

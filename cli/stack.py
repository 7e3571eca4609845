"""The dev stack: local Kafka and Postgres, migrations, models, and the services: ingest, the
dispatcher, and the supervisor that runs executors per model (cli.autoscale).

`inferhook up` runs it in the foreground; Ctrl-C stops what it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time

from cli.infra import InfraError, LocalKafka, LocalKafkaCluster, LocalPostgres
from cli.infra.kafka import resolve_jars
from cli.infra.process import port_open, wait_until
from cli.supervise import Service, Supervisor, stop_on_signals
from inferhook.catalog import CatalogEntry, load_catalog
from inferhook.db import create_engine, migrate
from inferhook.settings import Settings
from store.accounts import create_key, owner_of

log = logging.getLogger(__name__)

DEV_KAFKA_PORT = 9092
"""The dev Kafka's port; the nodes of a dev cluster listen on 9092, 9093, 9094, ..."""
DEV_POSTGRES_PORT = 55432
DEV_OWNER = "dev"
SERVICES = ("ingest", "supervise", "dispatcher")
"""`supervise` starts and stops the executors of each model (scaled to zero when idle)."""
DEV_METRICS_PORTS = {"supervise": 9101, "dispatcher": 9102}
"""Each worker's /metrics port in the dev stack (ingest serves /metrics on its own port; the
executors the supervisor starts serve none)."""


def local_kafka(settings: Settings, brokers: int | None = None) -> LocalKafka | LocalKafkaCluster | None:
    """The dev Kafka, or None when INFERHOOK_KAFKA_BOOTSTRAP names another broker.

    `brokers=1`: one broker in state_dir/kafka; more: a cluster in state_dir/kafka-cluster;
    None: the dev cluster when one runs, else the single broker.
    """
    if "bootstrap" in settings.kafka.model_fields_set:
        return None
    jars, folder = settings.state_dir / "kafka-jars", settings.state_dir / "kafka-cluster"
    if brokers is None:
        size = len(list(folder.glob("node-*")))
        cluster = LocalKafkaCluster(folder, jars, brokers=size, port=DEV_KAFKA_PORT) if size else None
        if cluster is not None and cluster.running_pid() is not None:
            return cluster
        brokers = 1
    if brokers > 1:
        return LocalKafkaCluster(folder, jars, brokers=brokers, port=DEV_KAFKA_PORT)
    return LocalKafka(settings.state_dir / "kafka", jars, port=DEV_KAFKA_PORT)


def dev_kafka_env(settings: Settings) -> dict[str, str]:
    """INFERHOOK_KAFKA_* for services on the running dev cluster (its bootstrap list and
    replication factor); empty for the single dev broker or a Kafka named in the settings."""
    kafka = local_kafka(settings)
    if not isinstance(kafka, LocalKafkaCluster):
        return {}
    return {"INFERHOOK_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "INFERHOOK_KAFKA_REPLICATION_FACTOR": str(kafka.brokers)}


def local_postgres(settings: Settings) -> LocalPostgres | None:
    """The dev Postgres, or None when INFERHOOK_DATABASE_URL names another server."""
    if "url" in settings.database.model_fields_set:
        return None
    return LocalPostgres(settings.state_dir / "postgres", port=DEV_POSTGRES_PORT)


def infra_up(settings: Settings, brokers: int | None = None) -> list[str]:
    """Start the local servers that are not running yet; return what was started.

    `brokers`: Kafka nodes (1, or a cluster of 3...); None: the dev Kafka that runs, else 1.
    """
    started: list[str] = []
    kafka = local_kafka(settings, brokers)
    running = local_kafka(settings)
    if (kafka is not None and running is not None and running.running_pid() is not None
            and running.bootstrap != kafka.bootstrap):
        raise InfraError(f"a dev Kafka of another size runs on {running.bootstrap}; "
                         "stop it first (inferhook infra down)")
    if kafka is not None and kafka.running_pid() is None:
        resolve_jars(kafka.jars_dir)
        clock = time.monotonic()
        kafka.start()
        started.append("kafka")
        log.info("Kafka %s ready in %.1fs", kafka.bootstrap, time.monotonic() - clock)
    postgres = local_postgres(settings)
    if postgres is not None and postgres.running_pid() is None:
        clock = time.monotonic()
        postgres.start()
        started.append("postgres")
        log.info("PostgreSQL %s ready in %.1fs", postgres.url, time.monotonic() - clock)
    migrate(settings.database)
    return started


def infra_down(settings: Settings, which: list[str] | None = None) -> None:
    """Stop the local servers (all, or those named)."""
    for name, server in (("kafka", local_kafka(settings)), ("postgres", local_postgres(settings))):
        if server is not None and (which is None or name in which):
            server.stop()


def infra_status(settings: Settings) -> dict[str, str]:
    """A line per server: running with its address, external, or stopped."""
    status: dict[str, str] = {}
    kafka, postgres = local_kafka(settings), local_postgres(settings)
    status["kafka"] = (f"external {settings.kafka.bootstrap}" if kafka is None else
                       f"running on {kafka.bootstrap}" if kafka.running_pid() else "stopped")
    if isinstance(kafka, LocalKafkaCluster) and kafka.running_pid():
        up = sum(node.running_pid() is not None for node in kafka.nodes)
        status["kafka"] += f" ({up} of {kafka.brokers} brokers up)"
    status["postgres"] = (
        "external" if postgres is None else
        f"running on 127.0.0.1:{postgres.port}" if postgres.running_pid() else "stopped")
    return status


def build_outputs(entry: CatalogEntry) -> list[str]:
    """The files a model's build script writes, relative to its folder: every ONNX file of
    the manifest (`path` and the `extra` sessions) unless a package ships them, and the
    example input file when the manifest names one."""
    source = entry.manifest.onnx
    outputs = [] if source.package or source.path is None else [source.path, *source.extra.values()]
    if entry.manifest.example_input_file:
        outputs.append(entry.manifest.example_input_file)
    return outputs


def build_models(settings: Settings, *, force: bool = False) -> list[str]:
    """Run each model's build script whose outputs are missing; return the models built.

    A build script writes the ONNX file (unless a package ships it) and the example input
    file when the manifest names one.
    """
    built: list[str] = []
    for name, entry in load_catalog(settings.models_dir).items():
        source = entry.manifest.onnx
        if source.build is None or source.path is None:
            continue
        if all((entry.folder / output).exists() for output in build_outputs(entry)) and not force:
            continue
        log.info("building %s", name)
        subprocess.run([sys.executable, source.build], cwd=entry.folder, check=True)
        built.append(name)
    return built


async def dev_key(settings: Settings) -> str:
    """The dev stack's API key (owner `dev`), made once and kept in the state folder."""
    path = settings.state_dir / "dev-api-key"
    engine = create_engine(settings.database)
    try:
        if path.exists():
            key = path.read_text().strip()
            if await owner_of(engine, key) == DEV_OWNER:
                return key
        key = await create_key(engine, DEV_OWNER)
    finally:
        await engine.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def service_env(settings: Settings) -> dict[str, str]:
    """Environment for the service processes of the dev stack."""
    env = dict(os.environ)
    env.setdefault("INFERHOOK_DEV", "1")
    env.setdefault("INFERHOOK_WEBHOOK_ALLOW_NETS", "127.0.0.1/32")
    for name, value in dev_kafka_env(settings).items():  # a dev cluster (infra up --brokers 3)
        env.setdefault(name, value)
    env.setdefault("INFERHOOK_KAFKA_BOOTSTRAP", settings.kafka.bootstrap)
    env.setdefault("INFERHOOK_DATABASE_URL", settings.database.url.get_secret_value())
    return env


def up(settings: Settings) -> None:
    """Start everything, print where it listens, and stop what we started on Ctrl-C.

    The services run under a Supervisor: one that exits is started again (with a backoff
    and a log line) while the rest keep running.
    """
    if port_open(settings.port, settings.host):
        raise InfraError(f"{settings.host}:{settings.port} is taken; set INFERHOOK_PORT")
    started = infra_up(settings)
    build_models(settings)
    key = asyncio.run(dev_key(settings))
    env = service_env(settings)
    log.info("webhooks to 127.0.0.1 are allowed in the dev stack (INFERHOOK_WEBHOOK_ALLOW_NETS=%s)",
             env["INFERHOOK_WEBHOOK_ALLOW_NETS"])
    supervisor = Supervisor([
        Service(name, [sys.executable, "-m", "cli", name],
                env={**env, "INFERHOOK_METRICS_PORT": str(DEV_METRICS_PORTS.get(name, 0))})
        for name in SERVICES])
    supervisor.start()
    stopping = stop_on_signals()
    try:
        def ingest_listens() -> bool:
            supervisor.check()
            return stopping() or port_open(settings.port, settings.host)

        wait_until(ingest_listens, timeout=120, what="ingest", log=None)
        if not stopping():
            print(f"\ninferhook is up: {settings.base_url}  (console: {settings.base_url}/console)\n"
                  f"dev API key (owner {DEV_OWNER}): {key}\n"
                  f"  export INFERHOOK_API_KEY={key}\n"
                  f"  curl -H \"Authorization: Bearer $INFERHOOK_API_KEY\" {settings.base_url}/v1/models\n"
                  f"metrics: {settings.base_url}/metrics (ingest), "
                  + ", ".join(f"http://127.0.0.1:{port}/metrics ({name})"
                              for name, port in DEV_METRICS_PORTS.items())
                  + "\nCtrl-C stops everything.\n", flush=True)
        supervisor.run(stopping)
    finally:
        supervisor.stop(timeout=15)
        infra_down(settings, started)
        print("inferhook stopped.", flush=True)



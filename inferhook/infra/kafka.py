"""Apache Kafka 4.x in KRaft combined mode, run from its jars on Maven Central.

The jars are resolved once with Maven (`kafka-pom.xml`) into a cache folder; each server
gets its own data folder, formatted with `kafka.tools.StorageTool` on first start.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from inferhook.infra.errors import InfraError
from inferhook.infra.process import free_port, pid_alive, port_open, spawn, terminate, wait_until

POM = Path(__file__).with_name("kafka-pom.xml")

LOG4J2 = """\
<Configuration status="warn">
  <Appenders><Console name="out" target="SYSTEM_OUT">
    <PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers>
    <Logger name="kafka" level="info"/>
    <Logger name="org.apache.kafka" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Root level="warn"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


def new_cluster_id() -> str:
    """A random Kafka cluster id: url-safe base64 of 16 bytes, never starting with `-`
    (the storage tool would read it as an option; Kafka's own Uuid.randomUuid() skips those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def require_tool(name: str) -> str:
    """Return the path of a command-line tool, or raise with what to install instead."""
    path = shutil.which(name)
    if path is None:
        raise InfraError(
            f"`{name}` not found: install Java 17+ and Maven (Debian: apt-get install "
            "openjdk-17-jre-headless maven), or run `docker compose up` where Docker exists."
        )
    return path


def resolve_jars(cache: Path) -> Path:
    """Download the Kafka broker jars into `cache` once; return the folder."""
    marker = cache / ".complete"
    if marker.exists():
        return cache
    require_tool("java")
    mvn = require_tool("mvn")
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={cache}", "-DincludeScope=runtime"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"Maven could not resolve the Kafka jars:\n{result.stdout[-2000:]}")
    marker.touch()
    return cache


@dataclass
class LocalKafka:
    """One KRaft broker+controller on 127.0.0.1; `port=0` picks a free port."""

    data_dir: Path
    jars_dir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    pid: int | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir / 'logs'}",
                "num.partitions=4",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.flush.interval.messages=9223372036854775807",
                "",
            ])
        )
        (self.data_dir / "log4j2.xml").write_text(LOG4J2)
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            require_tool("java"), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1", "-Xshare:auto",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            "-cp", f"{self.jars_dir}/*", main, *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        """Format storage on first use, start the broker and wait until it serves clients."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_file = self.data_dir / "ports"
        if ports_file.exists() and (self.data_dir / "logs").exists():
            saved = [int(p) for p in ports_file.read_text().split()]
            self.port = self.port or saved[0]
            self.controller_port = saved[1]
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        if port_open(self.port):
            raise InfraError(f"port {self.port} is taken: stop what listens there or pick another")
        ports_file.write_text(f"{self.port} {self.controller_port}")
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            fmt = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise InfraError(f"Kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        self.log_path.write_text("")
        proc = spawn(self._java("kafka.Kafka", str(config)), log=self.log_path)
        self.pid = proc.pid
        self.pid_path.write_text(str(proc.pid))

        def ready() -> bool:
            if proc.poll() is not None:
                raise InfraError(f"Kafka exited at start; see {self.log_path}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            return "Kafka Server started" in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout=timeout, what="Kafka", log=self.log_path)

    def running_pid(self) -> int | None:
        """The pid of a broker started earlier from this data folder, if it still runs."""
        if not self.pid_path.exists():
            return None
        pid = int(self.pid_path.read_text())
        return pid if pid_alive(pid) else None

    def stop(self) -> None:
        """Stop the broker (controlled shutdown, then kill after a grace period)."""
        pid = self.pid or self.running_pid()
        if pid is not None:
            terminate(pid)
        self.pid_path.unlink(missing_ok=True)
        self.pid = None

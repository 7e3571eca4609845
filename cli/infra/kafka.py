"""Apache Kafka 4.x in KRaft combined mode, run from its jars on Maven Central.

The jars are resolved once with Maven (`kafka-pom.xml`) into a cache folder; each server
gets its own data folder, formatted with `kafka.tools.StorageTool` on first start.
`LocalKafka` is one broker+controller node; `LocalKafkaCluster` runs N of them as one
cluster with a static controller quorum (every node votes), RF N and min.insync.replicas 2.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import uuid
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

from cli.infra.errors import InfraError
from cli.infra.process import free_port, pid_alive, port_open, spawn, terminate, wait_until

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
    """One KRaft broker+controller on 127.0.0.1; `port=0` picks a free port.

    Alone it is its own single-voter quorum with replication factor 1. As a member of a
    `LocalKafkaCluster` it gets its `node_id`, the shared `voters` and `cluster_id`, and the
    cluster's `replication_factor` (topic default, offsets and transaction-state topics;
    min.insync.replicas is min(2, replication_factor)).
    """

    data_dir: Path
    jars_dir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    node_id: int = 1
    voters: str | None = None
    """`controller.quorum.voters` (id@host:port,...); None: this node alone."""
    cluster_id: str | None = None
    """Cluster id to format new storage with; None: a fresh random one."""
    replication_factor: int = 1
    pid: int | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def voter(self) -> str:
        """This node's entry in `controller.quorum.voters` (ports must be reserved first)."""
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    def _write_config(self) -> Path:
        replicas = self.replication_factor
        min_isr = min(2, replicas)
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.voters or self.voter}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir / 'logs'}",
                "num.partitions=4",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=4",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                "transaction.state.log.num.partitions=4",
                # A replica that fell out of sync never becomes leader: acked writes stay.
                "unclean.leader.election.enable=false",
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

    def saved_ports(self) -> tuple[int, int] | None:
        """The (client, controller) ports of an earlier start on this data folder, if any."""
        ports_file = self.data_dir / "ports"
        if not (ports_file.exists() and (self.data_dir / "logs").exists()):
            return None
        port, controller_port = (int(p) for p in ports_file.read_text().split())
        return port, controller_port

    def reserve_ports(self) -> None:
        """Fix the client and controller ports: those saved by an earlier start on this data
        folder (the client port unless one is given), else the ones given, else free ones.
        Saved in data_dir/ports."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if saved := self.saved_ports():
            self.port = self.port or saved[0]
            self.controller_port = saved[1]
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        (self.data_dir / "ports").write_text(f"{self.port} {self.controller_port}")

    def start(self, timeout: float = 90.0) -> None:
        """Format storage on first use, start the broker and wait until it serves clients."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Format storage on first use and start the process, without waiting for it.

        A cluster member only becomes ready once a quorum of voters runs, so a cluster
        launches every node before it waits for any.
        """
        self.reserve_ports()
        if port_open(self.port):
            raise InfraError(f"port {self.port} is taken: stop what listens there or pick another")
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = self.cluster_id or new_cluster_id()
            fmt = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise InfraError(f"Kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        self.log_path.write_bytes(b"")
        self._proc = spawn(self._java("kafka.Kafka", str(config)), log=self.log_path)
        self.pid = self._proc.pid
        self.pid_path.write_text(str(self.pid))

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the launched broker serves clients; raise if it exits or times out."""
        proc = self._proc
        if proc is None:
            raise InfraError(f"Kafka node {self.node_id} was not launched")

        def ready() -> bool:
            if proc.poll() is not None:
                raise InfraError(f"Kafka exited at start; see {self.log_path}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            return "Kafka Server started" in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout=timeout, what=f"Kafka node {self.node_id}", log=self.log_path)

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

    def kill(self) -> None:
        """SIGKILL the broker's process group, as a crash would; its data stays, so `start()`
        brings it back on the same folder and ports."""
        pid = self.pid or self.running_pid()
        if pid is not None:
            terminate(pid, first=signal.SIGKILL, timeout=10.0)
        self.pid_path.unlink(missing_ok=True)
        self.pid = None


@dataclass
class LocalKafkaCluster:
    """N KRaft broker+controller nodes on 127.0.0.1 forming one cluster.

    Every node is a voter of a static quorum (node ids 1..N), so the cluster keeps working
    with a minority of nodes down. Topics default to RF N; min.insync.replicas is 2, so an
    acks=all write is on at least two nodes; unclean leader election is off. Node i lives in
    data_dir/node-i; `port=0` picks free ports, else nodes listen on port, port+1, ...
    """

    data_dir: Path
    jars_dir: Path
    brokers: int = 3
    port: int = 0
    heap: str = "384m"
    nodes: list[LocalKafka] = field(init=False)

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise InfraError(f"a cluster needs at least one broker, not {self.brokers}")
        self.nodes = [
            LocalKafka(self.data_dir / f"node-{i}", self.jars_dir,
                       port=self.port + i - 1 if self.port else 0, heap=self.heap, node_id=i,
                       replication_factor=self.brokers)
            for i in range(1, self.brokers + 1)]

    @property
    def bootstrap(self) -> str:
        """Comma-separated host:port of every node (ports are fixed by `start()`)."""
        return ",".join(node.bootstrap for node in self.nodes)

    def _prepare(self) -> None:
        """Reserve every node's ports, then give each the shared voters and cluster id."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        extra = sorted(p.name for p in self.data_dir.glob("node-*")
                       if int(p.name.removeprefix("node-")) > self.brokers)
        if extra:
            raise InfraError(f"{self.data_dir} holds a larger cluster ({', '.join(extra)}); "
                             "remove the folder to change the number of brokers")
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        cluster_id = id_file.read_text().strip()
        fresh = _distinct_free_ports(2 * self.brokers)
        for node in self.nodes:
            if node.saved_ports() is None:
                node.port = node.port or fresh.pop()
                node.controller_port = node.controller_port or fresh.pop()
            node.reserve_ports()
        voters = ",".join(node.voter for node in self.nodes)
        for node in self.nodes:
            node.voters, node.cluster_id = voters, cluster_id

    def start(self, timeout: float = 120.0) -> None:
        """Format each node on first use (one cluster id), start them all, wait for all."""
        self._prepare()
        try:
            for node in self.nodes:
                if node.running_pid() is None:
                    node.launch()
            for node in self.nodes:
                if node.pid is not None:
                    node.wait_ready(timeout)
        except InfraError:
            self.stop()
            raise

    def start_node(self, index: int, timeout: float = 90.0) -> None:
        """Start node `index` (0-based) again on its data folder and ports."""
        self._prepare()
        self.nodes[index].start(timeout)

    def kill(self, index: int) -> None:
        """SIGKILL node `index` (0-based); its data stays for `start_node`."""
        self.nodes[index].kill()

    def running_pid(self) -> int | None:
        """The pid of any node of this cluster that still runs."""
        for node in self.nodes:
            if (pid := node.running_pid()) is not None:
                return pid
        return None

    def stop(self) -> None:
        """Stop every node: all are asked at once, so none waits on a quorum already gone."""
        for node in self.nodes:
            pid = node.pid or node.running_pid()
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()


def _distinct_free_ports(count: int) -> list[int]:
    """`count` different ports free on 127.0.0.1 (held open together while picked)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]

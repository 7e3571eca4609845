"""Kafka (one broker or a 3-broker cluster) and PostgreSQL for a chaos run, and their faults."""

from __future__ import annotations

from pathlib import Path

from chaos.config import Scenario
from cli.infra import InfraError, LocalKafka
from cli.infra.kafka import LocalKafkaCluster


class Brokers:
    """One `LocalKafka` or a `LocalKafkaCluster`, seen the same way: brokers 0..count-1.

    A killed broker (SIGKILL) keeps its data folder and ports; `start_node` brings it back.
    """

    def __init__(self, scenario: Scenario, data_dir: Path, jars_dir: Path) -> None:
        self.single: LocalKafka | None = None
        self.cluster: LocalKafkaCluster | None = None
        if scenario == "single":
            self.single = LocalKafka(data_dir, jars_dir)
        else:
            self.cluster = LocalKafkaCluster(data_dir, jars_dir, brokers=3)

    @property
    def count(self) -> int:
        return 1 if self.cluster is None else len(self.cluster.nodes)

    @property
    def bootstrap(self) -> str:
        """Comma-separated bootstrap servers."""
        return self.cluster.bootstrap if self.cluster is not None else self._single().bootstrap

    @property
    def replication_factor(self) -> int:
        """What the services create their topics with: every broker holds a copy."""
        return self.count

    def _single(self) -> LocalKafka:
        if self.single is None:
            raise InfraError("no single broker in a cluster scenario")
        return self.single

    def start(self) -> None:
        """Start every broker and wait until they serve clients."""
        if self.cluster is not None:
            self.cluster.start()
        else:
            self._single().start()

    def kill(self, index: int) -> None:
        """SIGKILL one broker, keeping its data."""
        if self.cluster is not None:
            self.cluster.kill(index)
        else:
            self._single().kill()

    def start_node(self, index: int) -> None:
        """Start a killed broker again on its data folder and ports; returns once it serves."""
        if self.cluster is not None:
            self.cluster.start_node(index)
        else:
            self._single().start()

    def stop(self) -> None:
        """Stop every broker (safe to call when some are already down)."""
        if self.cluster is not None:
            self.cluster.stop()
        elif self.single is not None:
            self.single.stop()

    def log_paths(self) -> list[Path]:
        """The brokers' own logs, to point at in the report."""
        if self.cluster is not None:
            return [node.log_path for node in self.cluster.nodes]
        return [self._single().log_path]

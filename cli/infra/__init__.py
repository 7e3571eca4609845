"""Local Kafka and PostgreSQL servers started as plain processes (no Docker).

Used by `inferhook infra up|down|status`, `inferhook up` and the test suite's fixtures.
"""

from cli.infra.errors import InfraError
from cli.infra.kafka import LocalKafka, LocalKafkaCluster
from cli.infra.postgres import LocalPostgres

__all__ = ["InfraError", "LocalKafka", "LocalKafkaCluster", "LocalPostgres"]

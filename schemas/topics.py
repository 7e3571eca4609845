"""Kafka topic names (a contract for outside consumers too).

| topic                              | key           | written by                     |
|------------------------------------|---------------|--------------------------------|
| `<prefix>.requests.<owner>.<name>` | prediction id | ingest (priority `default`)    |
| `<prefix>.requests.<owner>.<name>.interactive` | prediction id | ingest (priority `interactive`) |
| `<prefix>.requests.<owner>.<name>.batch` | prediction id | ingest (priority `batch`)    |
| `<prefix>.events`                  | prediction id | ingest, executors, dispatcher, supervisor |
| `<prefix>.control`                 | prediction id | ingest                         |
| `<prefix>.attempts`                | prediction id | executors                      |
| `<prefix>.dead-letter`             | original key  | executors                      |

A model's `default` topic keeps the name it had before priorities existed; its other two
add the priority as a last part (model names hold no dot, so no two names collide).

Consumer groups: `<prefix>.executors` (every executor; its committed offsets are where the
request queues stand) and `<prefix>.dispatcher` (every dispatcher).

The prefix is `inferhook` unless INFERHOOK_KAFKA_TOPIC_PREFIX says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.priority import Priority

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9][a-z0-9_-]{0,62}$")
"""Model names are `owner/name`, lower case, so each maps to exactly one topic name."""


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix."""

    prefix: str = "inferhook"

    @property
    def events(self) -> str:
        """Every lifecycle event of every prediction, as CloudEvents."""
        return f"{self.prefix}.events"

    @property
    def control(self) -> str:
        """Cancel requests that every executor reads."""
        return f"{self.prefix}.control"

    @property
    def attempts(self) -> str:
        """The attempt each executor starts per prediction, read by every executor
        (executors.attempts: runs lost to infrastructure are counted and retried)."""
        return f"{self.prefix}.attempts"

    @property
    def dead_letter(self) -> str:
        """Request messages no executor could decode, with the reason in a header."""
        return f"{self.prefix}.dead-letter"

    @property
    def executors_group(self) -> str:
        """The consumer group of every executor, over the request topics."""
        return f"{self.prefix}.executors"

    @property
    def dispatcher_group(self) -> str:
        """The consumer group of every dispatcher, over the events topic."""
        return f"{self.prefix}.dispatcher"

    def requests(self, model: str, priority: Priority = Priority.DEFAULT) -> str:
        """The request topic of one model (`owner/name`) and priority."""
        if not MODEL_NAME.match(model):
            raise ValueError(f"not a model name: {model!r}")
        base = f"{self.prefix}.requests.{model.replace('/', '.')}"
        return base if priority is Priority.DEFAULT else f"{base}.{priority.value}"

    def all_requests(self, model: str) -> dict[str, Priority]:
        """Every request topic of one model, with the priority it carries."""
        return {self.requests(model, priority): priority for priority in Priority}

"""How urgent a prediction is: the `priority` of a create, carried by its `created` event."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """A prediction's priority; each has its own request topic per model (schemas.topics).

    Executors drain a model's three topics by weight (executors.scheduling): with a backlog
    of `batch` work, an `interactive` request starts after the batch running when it came.
    """

    INTERACTIVE = "interactive"
    """Someone waits for it: served ahead of the other two."""
    DEFAULT = "default"
    """What a create gets when it names no priority."""
    BATCH = "batch"
    """Bulk work: served with what the other two leave."""

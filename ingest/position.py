"""Queue position and estimated start of a pending prediction, from the read model.

The position mirrors the executors' order (executors.scheduling) as an estimate: every
pending prediction of the model at a higher priority is ahead; at the same priority, the
owner's own earlier ones are, and each other owner is ahead by at most as many as the
owner's turns before this one (owners take turns). Lower priorities' small share is left
out. Position 1 starts next.

The start estimate divides the position by the model's observed throughput: predictions of
the model started in the last `WINDOW_SECONDS` (one indexed count, kept `FRESH_SECONDS` per
process once non-zero). None when nothing started in that window: no throughput was observed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web

from ingest.state import ENGINE
from schemas.api import Prediction
from schemas.events import utcnow
from schemas.priority import Priority
from schemas.status import Status
from schemas.tables import PredictionRow
from store import predictions

WINDOW_SECONDS = 60.0
"""How far back starts are counted to measure a model's throughput."""
FRESH_SECONDS = 5.0
"""How long one process reuses a model's measured throughput."""
_RANK = {p.value: i for i, p in enumerate(Priority)}


class Group(Protocol):
    """Pending predictions of one priority and owner (store.predictions.PendingGroup)."""

    @property
    def priority(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def earlier(self) -> int: ...


def position(groups: Sequence[Group], *, priority: str, owner: str) -> int:
    """1-based estimate of where a pending prediction of `owner` at `priority` stands, given
    the model's pending predictions by group (itself included, see the module's rule)."""
    mine = next((g for g in groups if g.priority == priority and g.owner == owner), None)
    turn = (mine.earlier if mine is not None else 0) + 1
    ahead = turn - 1
    for group in groups:
        rank = _RANK.get(group.priority, len(_RANK))
        if rank < _RANK[priority]:
            ahead += group.n
        elif group.priority == priority and group.owner != owner:
            ahead += min(group.n, turn)
    return ahead + 1


def estimated_start(place: int, per_second: float | None, now: datetime) -> datetime | None:
    """When the prediction at `place` should start at `per_second` starts (None: unknown)."""
    if not per_second:
        return None
    return now + timedelta(seconds=place / per_second)


@dataclass
class Throughput:
    """Per model: starts per second over the last WINDOW_SECONDS, and when it was measured."""

    rates: dict[str, tuple[float, float]] = field(default_factory=dict)

    async def of(self, app: web.Application, model: str) -> float:
        """The model's starts per second (measured at most FRESH_SECONDS ago)."""
        cached = self.rates.get(model)
        if cached is not None and time.monotonic() - cached[0] < FRESH_SECONDS:
            return cached[1]
        async with app[ENGINE].connect() as conn:
            started = await predictions.started_since(conn, model, WINDOW_SECONDS)
        rate = started / WINDOW_SECONDS
        if rate:  # a model just starting to serve is measured again on the next read
            self.rates[model] = (time.monotonic(), rate)
        return rate


THROUGHPUT = web.AppKey("throughput", Throughput)


async def shown(app: web.Application, row: PredictionRow, prediction: Prediction) -> Prediction:
    """`prediction` (the API view of `row`) with queue_position and estimated_start_at set
    while it is pending."""
    if row.status != Status.PENDING:
        return prediction
    async with app[ENGINE].connect() as conn:
        groups: list[Group] = list(await predictions.queue_ahead(conn, row))
    place = position(groups, priority=row.priority, owner=row.owner)
    rate = await app[THROUGHPUT].of(app, row.model)
    prediction.queue_position = place
    prediction.estimated_start_at = estimated_start(place, rate, utcnow())
    return prediction

"""Queue position and estimated start of a pending prediction, from the read model (the
rule: schemas.position).

The throughput behind the start estimate is one indexed count of the model's recent starts,
kept `FRESH_SECONDS` per process once non-zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from ingest.state import ENGINE
from schemas.api import Prediction
from schemas.events import utcnow
from schemas.position import WINDOW_SECONDS, Group, estimated_start, position, throughput
from schemas.status import Status
from schemas.tables import PredictionRow
from store import predictions

FRESH_SECONDS = 5.0
"""How long one process reuses a model's measured throughput."""


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
            started, span = await predictions.started_since(conn, model, WINDOW_SECONDS)
        rate = throughput(started, span)
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

"""The queue place in `start` webhooks sent at create time (dispatcher.fold._announce).

Their body is the pending prediction as GET shows it, `queue_position` and
`estimated_start_at` included (the rule: schemas.position). One statement per batch, and
only for a batch with such webhooks: the pending predictions of their models by priority
and owner, as the batch leaves them (store.predictions.queue_places).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatcher.fold import Folded, Intent
from schemas.api import Prediction
from schemas.events import EventType
from schemas.position import WINDOW_SECONDS, estimated_start, position, throughput
from schemas.status import Status
from store import predictions
from store.records import Connection


@dataclass(frozen=True)
class _Group:
    priority: str
    owner: str
    n: int
    earlier: int


@dataclass(frozen=True)
class Place:
    """Where one pending prediction stands, as its `start` webhook says."""

    queue_position: int
    estimated_start_at: datetime | None


def places(groups: Sequence[predictions.QueuedGroup], now: datetime) -> dict[str, Place]:
    """Each target's place, from the pending predictions of its model by group."""
    by_model: dict[str, list[predictions.QueuedGroup]] = {}
    for group in groups:
        by_model.setdefault(group.model, []).append(group)
    found: dict[str, Place] = {}
    for group in groups:
        for target, earlier in zip(group.targets or (), group.earlier or (), strict=True):
            mine = [_Group(g.priority, g.owner, g.n, earlier if g is group else 0)
                    for g in by_model[group.model]]
            place = position(mine, priority=group.priority, owner=group.owner)
            rate = throughput(group.started, group.span)
            found[target] = Place(place, estimated_start(place, rate, now))
    return found


def placed(intent: Intent, place: Place | None) -> Intent:
    """`intent` with its body showing `place` (unchanged without one)."""
    if place is None:
        return intent
    shown = Prediction.model_validate_json(intent.body)
    shown.queue_position, shown.estimated_start_at = place.queue_position, place.estimated_start_at
    return dataclasses.replace(intent, body=shown.model_dump_json().encode())


async def fill_queue_places(conn: Connection, folded: Folded, now: datetime) -> None:
    """Put the queue place into the batch's create-time `start` webhooks (in place)."""
    targets = sorted({i.prediction_id for i in folded.intents if i.event_type is EventType.CREATED})
    if not targets:
        return
    models = {folded.rows[pid].model for pid in targets}
    chosen = set(targets)
    rows = [{"id": r.id, "model": r.model, "priority": r.priority, "owner": r.owner,
             "created_at": r.created_at, "pending": r.status == Status.PENDING or r.id in chosen}
            for r in folded.rows.values() if r.model in models]
    found = places(await predictions.queue_places(conn, sorted(models), targets, rows,
                                                  WINDOW_SECONDS), now)
    folded.intents[:] = [placed(i, found.get(i.prediction_id))
                         if i.event_type is EventType.CREATED else i for i in folded.intents]

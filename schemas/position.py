"""Where a pending prediction stands in its model's queue, and when it should start: one
rule for GET and the event stream (ingest.position) and the `start` webhook sent at create
time (dispatcher.queueplace). Pure functions of counts the read model gives.

The position mirrors the executors' order (executors.scheduling) as an estimate: every
pending prediction of the model at a higher priority is ahead; at the same priority, the
owner's own earlier ones are, and each other owner is ahead by at most as many as the
owner's turns before this one (owners take turns). Lower priorities' small share is left
out. Position 1 starts next.

The start estimate divides the position by the model's observed throughput: its
predictions started in the last `WINDOW_SECONDS`, or, once at least `SAMPLE_STARTS` did, the
latest `SAMPLE_STARTS` over the time they took (so measuring costs the same at any rate).
None when nothing started in that window: no throughput was observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from schemas.priority import Priority

WINDOW_SECONDS = 60.0
"""How far back starts are counted to measure a model's throughput."""
SAMPLE_STARTS = 200
"""Most starts read to measure it (the latest)."""
_RANK = {p.value: i for i, p in enumerate(Priority)}


class Group(Protocol):
    """Pending predictions of one model, one priority and one owner."""

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
    the model's pending predictions by group (itself included, see the module's rule). Of
    the groups' `earlier` counts (those created before it), only its own group's is read."""
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


def throughput(started: int, span: float | None) -> float:
    """Starts per second of a model whose latest `started` starts in the window (at most
    SAMPLE_STARTS) reach back `span` seconds."""
    if started < SAMPLE_STARTS or not span:
        return started / WINDOW_SECONDS
    return started / span


def estimated_start(place: int, per_second: float | None, now: datetime) -> datetime | None:
    """When the prediction at `place` should start at `per_second` starts (None: unknown)."""
    if not per_second:
        return None
    return now + timedelta(seconds=place / per_second)

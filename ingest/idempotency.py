"""`Idempotency-Key` on create: one prediction per (owner, key, body) for 24 hours.

A Postgres row is the reservation. The first request inserts it (`INSERT … ON CONFLICT`)
naming the prediction id it is about to create; a concurrent twin blocks on that row, then
finds it taken and waits (briefly) for the prediction to become readable, and answers with it.

Kafka can fail after the reservation: the creator then releases it, so a retry starts
afresh. If even that delete fails (Postgres gone too), the reservation stays
`committed = false` and a request arriving more than RESERVATION_GRACE seconds later takes
it over, as long as no prediction with the reserved id exists (the created event never
became durable).

The creator can also die between writing `created` to the events topic and to the request
topic: the prediction then exists (the projector makes its row) but its reservation was never
committed. A replay of such a reservation says so (`Replay.interrupted`), and the caller
writes the request again before answering (see ingest.create.resume).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.errors import Conflict
from ingest.reads import load_prediction
from schemas.api import PredictionCreate, ProblemItem
from schemas.tables import PredictionRow
from store import idempotency as reservations
from store.records import Connection

RESERVATION_GRACE = 60.0
"""Seconds after which an uncommitted reservation without a prediction may be taken over
(> Kafka timeout)."""
TWIN_WAIT = 5.0
"""Seconds a request waits for a concurrent twin's prediction before answering 409."""
TWIN_POLL = 0.05

def body_hash(body: PredictionCreate, kind: str | None = None,
              task_options: dict[str, Any] | None = None) -> str:
    """Digest of a create body (with the task kind and options of an async create),
    insensitive to key order and whitespace."""
    data = body.model_dump(mode="json")
    if kind is not None:
        data = {"create": data, "kind": kind, "task_options": task_options}
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The prediction an Idempotency-Key already made."""

    row: PredictionRow
    interrupted: bool
    """Its create never finished (reservation not committed): the request may not be in Kafka."""


@dataclass(frozen=True)
class Reservation:
    """A reserved key: the prediction id it stands for."""

    owner: str
    key: str
    prediction_id: str

    async def commit(self, conn: Connection) -> None:
        """Mark the reservation as backed by a durable prediction (in the caller's transaction)."""
        await reservations.commit(conn, self.owner, self.key, self.prediction_id)

    async def release(self, engine: AsyncEngine) -> None:
        """Give the key back after the prediction could not be created."""
        async with engine.begin() as conn:
            await reservations.release(conn, self.owner, self.key, self.prediction_id)


async def reserve_or_replay(engine: AsyncEngine, reservation: Reservation, digest: str,
                            ttl_hours: float) -> Replay | None:
    """None when `reservation` is ours to create; else the prediction this key already made.

    409 when the key was used with another body, or its first request is still in flight.
    """
    owner, key = reservation.owner, reservation.key
    for _ in range(3):
        async with engine.begin() as conn:
            if await reservations.reserve(conn, owner, key, reservation.prediction_id,
                                          body_hash=digest, ttl=ttl_hours * 3600,
                                          grace=RESERVATION_GRACE):
                return None
            existing = await reservations.existing(conn, owner, key)
        if existing is None:  # released between our insert and our read: try again
            continue
        if existing.body_hash != digest:
            msg = "this Idempotency-Key was already used with a different request body"
            raise Conflict(msg, [ProblemItem(loc=["header", "Idempotency-Key"], msg=msg)])
        return await _twin_prediction(engine, owner, key, existing.prediction_id)
    raise Conflict("this Idempotency-Key is being reserved concurrently; retry",
                   headers={"Retry-After": "1"})


async def _twin_prediction(engine: AsyncEngine, owner: str, key: str,
                          prediction_id: str) -> Replay:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + TWIN_WAIT
    while True:
        row = await load_prediction(engine, prediction_id, owner)
        if row is not None:
            async with engine.connect() as conn:
                committed = await reservations.committed(conn, owner, key, prediction_id)
            return Replay(row, interrupted=committed is False)
        if loop.time() >= give_up:
            raise Conflict("a request with this Idempotency-Key is still being processed; retry",
                           headers={"Retry-After": "1"})
        await asyncio.sleep(TWIN_POLL)

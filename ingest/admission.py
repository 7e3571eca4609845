"""Admission control: refuse a create (429) before anything is written to Kafka when its
model's queue or its account's predictions in flight are at their cap.

Three caps, each off unless configured:
- a model's queue depth: its pending predictions, every owner and priority (the manifest's
  `max_queue_depth`, overridden per model by INFERHOOK_API_QUEUE_DEPTH_LIMITS);
- an account's predictions in flight: pending or started, all its keys together
  (INFERHOOK_API_MAX_IN_FLIGHT_PER_OWNER);
- an API key's predictions in flight: those made with that key, pending or started
  (INFERHOOK_API_MAX_IN_FLIGHT_PER_KEY); one key at its cap leaves the account's others free.

The counts are the read model's (one indexed count each, only for a cap that is set), so
they lag the executors by the projection delay, and creates racing on N ingest processes
may pass a cap by the number of creates in flight at that moment: a cap bounds the queue,
it is not a quota to the unit. The refusal says when to come back (`Retry-After`) from the
model's observed throughput when ingest knows it (ingest.throughput), else `RETRY_AFTER`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web

from ingest.errors import QueueFull
from ingest.state import CATALOG, ENGINE, SETTINGS
from store import predictions

RETRY_AFTER = 5
"""Seconds a refusal asks the client to wait when the model's throughput is unknown."""
MAX_RETRY_AFTER = 300
"""Longest wait a refusal asks for."""


@dataclass(frozen=True)
class Refusal:
    """Why a create is refused, and what the answer says."""

    detail: str
    limit: int
    retry_after: int

    def error(self) -> QueueFull:
        """The 429 the API answers with (Retry-After and the draft RateLimit-* headers)."""
        return QueueFull(self.detail, headers={
            "Retry-After": str(self.retry_after), "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": "0", "RateLimit-Reset": str(self.retry_after)})


def retry_after(excess: int, per_second: float | None) -> int:
    """Seconds until `excess` predictions have drained at `per_second` (at least 1, at most
    MAX_RETRY_AFTER; RETRY_AFTER when the rate is unknown)."""
    if not per_second or per_second <= 0:
        return RETRY_AFTER
    return min(MAX_RETRY_AFTER, max(1, math.ceil(excess / per_second)))


def judge(*, model: str, queued: int | None, queue_limit: int | None, owner_open: int | None,
          owner_limit: int, key_open: int | None = None, key_limit: int = 0,
          per_second: float | None = None) -> Refusal | None:
    """The refusal for a create seeing these counts (None where a count was not taken), or
    None to admit it. One more pending prediction must fit under each cap that is set."""
    if queue_limit is not None and queued is not None and queued >= queue_limit:
        return Refusal(f"the queue of {model} is full ({queued} pending, at most {queue_limit}); "
                       "retry later", queue_limit,
                       retry_after(queued - queue_limit + 1, per_second))
    if owner_limit > 0 and owner_open is not None and owner_open >= owner_limit:
        return Refusal(f"this account has {owner_open} predictions pending or running, at most "
                       f"{owner_limit}; retry once some have finished", owner_limit,
                       retry_after(owner_open - owner_limit + 1, per_second))
    if key_limit > 0 and key_open is not None and key_open >= key_limit:
        return Refusal(f"this API key has {key_open} predictions pending or running, at most "
                       f"{key_limit}; retry once some have finished", key_limit,
                       retry_after(key_open - key_limit + 1, per_second))
    return None


def queue_limit(app: web.Application, model: str) -> int | None:
    """The model's queue cap: the setting's override, else its manifest's, else None."""
    override = app[SETTINGS].api.queue_depth_limits.get(model)
    if override is not None:
        return override
    entry = app[CATALOG].get(model)
    return entry.manifest.max_queue_depth if entry is not None else None


async def admit(app: web.Application, owner: str, api_key_id: str | None, model: str,
                per_second: float | None = None) -> None:
    """Raise QueueFull when a create of `model` by `owner` with the API key `api_key_id` must
    be refused (see above); asks Postgres only for the caps that are set."""
    limit = queue_limit(app, model)
    owner_limit = app[SETTINGS].api.max_in_flight_per_owner
    key_limit = app[SETTINGS].api.max_in_flight_per_key if api_key_id is not None else 0
    if limit is None and owner_limit <= 0 and key_limit <= 0:
        return
    async with app[ENGINE].connect() as conn:
        queued = await predictions.pending_of_model(conn, model) if limit is not None else None
        owner_open = await predictions.open_of_owner(conn, owner) if owner_limit > 0 else None
        key_open = (await predictions.open_of_key(conn, api_key_id)
                    if key_limit > 0 and api_key_id is not None else None)
    refusal = judge(model=model, queued=queued, queue_limit=limit, owner_open=owner_open,
                    owner_limit=owner_limit, key_open=key_open, key_limit=key_limit,
                    per_second=per_second)
    if refusal is not None:
        raise refusal.error()

"""Reads of the read model for the API, always scoped to the caller (others' rows do not
exist): shared reads for waiters, list cursors, history redaction. The SQL is store.predictions."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.errors import BadRequest
from schemas.api import HistoryEvent, ListQuery, ProblemItem
from schemas.events import event_id
from schemas.tables import PredictionRow
from store import predictions

REMOVED_FIELDS = ("input", "output", "logs")
"""Event data fields that are blanked once a prediction's data has expired."""


async def load_prediction(engine: AsyncEngine, prediction_id: str, owner: str) -> PredictionRow | None:
    """The caller's prediction, or None (for unknown ids and others' ids alike)."""
    async with engine.connect() as conn:
        return await predictions.get(conn, prediction_id, owner)


class SharedReads:
    """Reads of one prediction by many waiters at once share one query.

    A waiter joins a read in flight only if that read started after the waiter was woken,
    so nobody is handed a row read before the change that woke them.
    """

    def __init__(self) -> None:
        self.inflight: dict[tuple[str, str], tuple[float, asyncio.Future[PredictionRow | None]]] = {}

    async def load(self, engine: AsyncEngine, prediction_id: str, owner: str,
                   not_before: float) -> PredictionRow | None:
        """The row as read by a query that started at `not_before` (monotonic) or later."""
        key = (prediction_id, owner)
        current = self.inflight.get(key)
        if current is None or current[0] < not_before:
            future = asyncio.ensure_future(load_prediction(engine, prediction_id, owner))
            current = (time.monotonic(), future)
            self.inflight[key] = current
            future.add_done_callback(lambda _: self._forget(key, future))
        # Shielded: one waiter leaving must not cancel the read the others wait on.
        return await asyncio.shield(current[1])

    def _forget(self, key: tuple[str, str], future: asyncio.Future[PredictionRow | None]) -> None:
        current = self.inflight.get(key)
        if current is not None and current[1] is future:
            del self.inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved: a failed shared read is reported to its waiters only


def encode_cursor(row: PredictionRow) -> str:
    """An opaque position just after `row` in newest-first order."""
    raw = orjson.dumps([row.created_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for; 400 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, prediction_id = orjson.loads(raw)
        return datetime.fromisoformat(created_at), str(prediction_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        msg = "cursor is not one this API handed out; use the `next` URL of a page"
        raise BadRequest(msg, [ProblemItem(loc=["query", "cursor"], msg=msg)]) from exc


async def list_predictions(engine: AsyncEngine, owner: str,
                           query: ListQuery) -> tuple[list[PredictionRow], bool]:
    """One page of the caller's predictions, newest first, and whether older ones remain."""
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    async with engine.connect() as conn:
        rows = await predictions.page(
            conn, owner, limit=query.limit + 1,
            status=query.status.value if query.status is not None else None, model=query.model,
            created_after=query.created_after, created_before=query.created_before, after=after)
    return rows[:query.limit], len(rows) > query.limit


async def load_events(engine: AsyncEngine, row: PredictionRow, after: int) -> list[HistoryEvent]:
    """The recorded events of `row` with a sequence above `after`, oldest first."""
    async with engine.connect() as conn:
        found = await predictions.history(conn, row.id, after)
    return [HistoryEvent(id=event_id(row.id, r.sequence), sequence=r.sequence, type=r.type,
                         time=r.time, data=_redacted(r.data) if row.data_removed else r.data)
            for r in found]


def _redacted(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if k in REMOVED_FIELDS else v) for k, v in data.items()}

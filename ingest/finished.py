"""Answers for finished predictions, kept in memory: a terminal prediction never changes.

Only its data can still go (the retention sweep at `expires_at`), so an entry is kept at
most until then, and never longer than FRESH_SECONDS. A GET of a finished prediction is
then served without Postgres and without serializing it again; everything else reads
the row. Entries remember their owner, so another owner's GET still answers 404.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from schemas.events import utcnow
from schemas.status import Status
from schemas.tables import PredictionRow

FRESH_SECONDS = 300.0
MAX_ENTRIES = 20_000


class FinishedCache:
    """Prediction id → (owner, JSON body, monotonic expiry), least recently used first out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()

    def get(self, prediction_id: str, owner: str) -> bytes | None:
        """The cached answer for this owner, or None."""
        entry = self.entries.get(prediction_id)
        if entry is None:
            return None
        if entry[2] <= self.clock():
            del self.entries[prediction_id]
            return None
        if entry[0] != owner:
            return None
        return entry[1]

    def put(self, row: PredictionRow, body: bytes) -> None:
        """Remember the answer for `row` if it is final (terminal) until its data expires."""
        if not Status(row.status).is_terminal():
            return
        keep = FRESH_SECONDS
        if row.expires_at is not None and not row.data_removed:
            keep = min(keep, (row.expires_at - utcnow()).total_seconds())
        if keep <= 0:
            return
        self.entries[row.id] = (row.owner, body, self.clock() + keep)
        self.entries.move_to_end(row.id)
        if len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)

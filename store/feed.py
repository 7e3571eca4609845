"""The account event feed: reads of `prediction_events` by owner, in feed order.

Rows are ordered by (`txid`, `position`): the writing transaction's id, then the identity
value. Ordering by `position` alone would skip events: two projector transactions draw
positions 10 and 11, the one holding 11 commits first, a reader moves past 11, then 10
commits behind it. So a read returns only rows whose transaction is older than every
transaction still running (`txid < xmin` of the statement's snapshot): everything such a
transaction wrote is committed (or gone), and every row written later has a `txid` at
least that xmin, so it sorts after anything already read. A long-running writing
transaction anywhere on the server (xids are server-wide) holds the feed back, never out
of order, until it ends; the projector's transactions are one batch each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.feed import Cursor

_HORIZON = "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
_MATCHES = """
  owner = :owner AND (txid, position) > (:txid, :position)
  AND (cardinality(CAST(:types AS text[])) = 0 OR type = ANY(CAST(:types AS text[])))
  AND (cardinality(CAST(:models AS text[])) = 0 OR model = ANY(CAST(:models AS text[])))
"""

PAGE = text(f"""
SELECT txid, position, prediction_id, sequence, type, model, time, data
FROM prediction_events
WHERE {_MATCHES} AND txid < {_HORIZON}
ORDER BY txid, position LIMIT :limit
""")

HELD_BACK = text(f"""
SELECT EXISTS (SELECT 1 FROM prediction_events WHERE {_MATCHES} AND txid >= {_HORIZON})
""")
"""Whether matching rows exist that an older transaction, still running, holds back."""


@dataclass(frozen=True)
class FeedRow:
    """One recorded event as the feed reads it."""

    cursor: Cursor
    prediction_id: str
    sequence: int
    type: str
    model: str
    time: datetime
    data: dict[str, Any]


async def page(conn: AsyncConnection, owner: str, after: Cursor, *, types: Sequence[str],
               models: Sequence[str], limit: int) -> list[FeedRow]:
    """Up to `limit` of the owner's events after `after` in feed order (empty filters: all)."""
    found = await conn.execute(PAGE, {**_params(owner, after, types, models), "limit": limit})
    return [FeedRow(Cursor(r.txid, r.position), r.prediction_id, r.sequence, r.type, r.model,
                    r.time, r.data) for r in found]


async def held_back(conn: AsyncConnection, owner: str, after: Cursor, *, types: Sequence[str],
                    models: Sequence[str]) -> bool:
    """True when matching events after `after` are committed but not readable yet (an older
    transaction is still running); a reader should look again soon."""
    return bool((await conn.execute(HELD_BACK, _params(owner, after, types, models))).scalar())


def _params(owner: str, after: Cursor, types: Sequence[str],
            models: Sequence[str]) -> dict[str, Any]:
    return {"owner": owner, "txid": after.txid, "position": after.position,
            "types": list(types), "models": list(models)}

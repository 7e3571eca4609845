"""Events held for predictions the projector does not know yet (`parked_events`).

Kept in the projector's batch transaction and applied, in sequence order, once the
prediction's `created` is projected (see dispatcher.fold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text

from store.records import Connection, execute, fetch, jsonb

LOAD = text("""
SELECT prediction_id, headers, value FROM parked_events
WHERE prediction_id = ANY(CAST(:ids AS text[]))
ORDER BY prediction_id, sequence FOR UPDATE
""")

PARK = text("""
INSERT INTO parked_events (prediction_id, sequence, headers, value, parked_at)
SELECT id, seq, h, v, now() FROM unnest(CAST(:ids AS text[]), CAST(:sequences AS bigint[]),
                                        CAST(:headers AS jsonb[]), CAST(:values AS bytea[]))
  AS x(id, seq, h, v)
ON CONFLICT (prediction_id, sequence) DO NOTHING
""")
"""The first copy of a sequence is kept (as the fold does)."""

UNPARK = text("DELETE FROM parked_events WHERE prediction_id = ANY(CAST(:ids AS text[]))")


async def lock(conn: Connection, ids: Sequence[str]) -> Sequence[Mapping[str, Any]]:
    """Lock and read the held events of these predictions: (prediction_id, headers, value),
    in sequence order per prediction; `headers` as [name, value] pairs."""
    if not ids:
        return []
    return await fetch(conn, LOAD, {"ids": list(ids)})


async def park(conn: Connection,
               events: Sequence[tuple[str, int, list[list[str]], bytes]]) -> None:
    """Hold events, each (prediction_id, sequence, headers, value as it came from Kafka)."""
    if events:
        await execute(conn, PARK, {
            "ids": [e[0] for e in events], "sequences": [e[1] for e in events],
            "headers": [jsonb(e[2]) for e in events], "values": [e[3] for e in events]})


async def unpark(conn: Connection, prediction_ids: Sequence[str]) -> None:
    """Forget the held events of these predictions (they were applied)."""
    if prediction_ids:
        await execute(conn, UNPARK, {"ids": sorted(prediction_ids)})

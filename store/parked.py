"""Events held for predictions the projector does not know yet (`parked_events`).

Kept in the projector's batch transaction and applied, in sequence order, once the
prediction's `created` is projected (see dispatcher.fold). The statements run inside the
projector's two (store.predictions LOCK and APPLY).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store.records import jsonb

HELD = """
SELECT prediction_id, sequence, headers, value FROM parked_events
WHERE prediction_id = ANY(CAST(:ids AS text[]))
ORDER BY prediction_id, sequence FOR UPDATE"""
"""The held events of a batch's predictions, locked (headers as [name, value] pairs)."""

PARK = """
INSERT INTO parked_events (prediction_id, sequence, headers, value, parked_at)
SELECT id, seq, h, v, now() FROM unnest(CAST(:park_ids AS text[]),
                                        CAST(:park_sequences AS bigint[]),
                                        CAST(:park_headers AS jsonb[]),
                                        CAST(:park_values AS bytea[]))
  AS x(id, seq, h, v)
ON CONFLICT (prediction_id, sequence) DO NOTHING"""
"""The first copy of a sequence is kept (as the fold does)."""

UNPARK = "DELETE FROM parked_events WHERE prediction_id = ANY(CAST(:unpark AS text[]))"
"""The predictions never overlap PARK's: an event is held only while its prediction is not
known, and its held events are released once it is."""


@dataclass(frozen=True)
class Writes:
    """What a projected batch changes in `parked_events`."""

    park: Sequence[tuple[str, int, list[list[str]], bytes]] = ()
    """Events to hold, each (prediction_id, sequence, headers, value as it came from Kafka)."""
    unpark: Sequence[str] = ()
    """Predictions whose held events were applied (removed)."""

    def parameters(self) -> dict[str, Any]:
        """PARK's and UNPARK's parameters."""
        return {"park_ids": [e[0] for e in self.park],
                "park_sequences": [e[1] for e in self.park],
                "park_headers": [jsonb(e[2]) for e in self.park],
                "park_values": [e[3] for e in self.park], "unpark": sorted(self.unpark)}

"""The projector's position (`dispatcher_offsets`): the next event offset per partition,
written in the batch's own transaction so a batch is applied exactly once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

STORE = """
INSERT INTO dispatcher_offsets (topic, partition, next_offset, updated_at)
SELECT t, p, o, now() FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[]),
                                  CAST(:offsets AS bigint[])) AS x(t, p, o)
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = GREATEST(dispatcher_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = EXCLUDED.updated_at"""
"""An offset only moves forward. Run inside the projector's one write statement
(store.predictions.apply), with `parameters`."""

LOAD = text("""
SELECT partition, next_offset FROM dispatcher_offsets
WHERE topic = :topic AND partition = ANY(CAST(:partitions AS integer[]))
""")


def parameters(offsets: Mapping[tuple[str, int], int]) -> dict[str, list[Any]]:
    """STORE's parameters: (topic, partition) → next offset to project."""
    keys = sorted(offsets)
    return {"topics": [t for t, _ in keys], "partitions": [p for _, p in keys],
            "offsets": [offsets[k] for k in keys]}


async def load(conn: AsyncConnection, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """The next offset to project of each partition that has one stored."""
    result = await conn.execute(LOAD, {"topic": topic, "partitions": list(partitions)})
    return {row.partition: row.next_offset for row in result}

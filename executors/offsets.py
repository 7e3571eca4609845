"""Which request offsets may be committed: up to the first record still in flight.

Records of one partition finish out of order (batches, cancels, timeouts); the commit
for a partition is the offset of its oldest unfinished record, or one past the newest
record seen when nothing is in flight. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from aiokafka import TopicPartition


class OffsetTracker:
    """In-flight offsets per partition and the commit each allows."""

    def __init__(self) -> None:
        self._in_flight: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def begin(self, tp: TopicPartition, offset: int) -> None:
        """A record was taken for processing."""
        self._in_flight.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """A record's outcome is durable (or it needs none)."""
        self._in_flight.get(tp, set()).discard(offset)

    @property
    def in_flight(self) -> int:
        """Records taken and not yet done, over all partitions."""
        return sum(len(offsets) for offsets in self._in_flight.values())

    def in_flight_on(self, partitions: set[TopicPartition]) -> int:
        """Records in flight on these partitions."""
        return sum(len(self._in_flight.get(tp, ())) for tp in partitions)

    def commits(self) -> dict[TopicPartition, int]:
        """Offsets to commit now (only those that moved since the last call)."""
        moved: dict[TopicPartition, int] = {}
        for tp, upcoming in self._next.items():
            pending = self._in_flight.get(tp)
            position = min(pending) if pending else upcoming
            if position > self._committed.get(tp, -1):
                moved[tp] = position
        return moved

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Record that these offsets were committed."""
        self._committed.update(offsets)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop the bookkeeping of partitions this executor no longer owns."""
        for tp in partitions:
            self._in_flight.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

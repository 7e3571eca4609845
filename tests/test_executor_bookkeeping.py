"""Pure bookkeeping of the executor: which offsets may be committed, the bounded cancel set."""

from __future__ import annotations

from aiokafka import TopicPartition

from executors.control import CanceledIds
from executors.offsets import OffsetTracker
from schemas.status import FailureReason

TP = TopicPartition("requests", 0)
OTHER = TopicPartition("requests", 1)


def test_commit_stays_behind_the_oldest_unfinished_record() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.begin(TP, offset)
    tracker.done(TP, 6)
    tracker.done(TP, 7)
    assert tracker.commits() == {TP: 5}  # 5 still runs: a crash now must re-deliver it
    tracker.committed({TP: 5})
    assert tracker.commits() == {}
    tracker.done(TP, 5)
    assert tracker.commits() == {TP: 8}
    assert tracker.in_flight == 0


def test_partitions_are_independent_and_forgotten_on_revoke() -> None:
    tracker = OffsetTracker()
    tracker.begin(TP, 0)
    tracker.begin(OTHER, 10)
    tracker.done(OTHER, 10)
    assert tracker.commits() == {TP: 0, OTHER: 11}
    assert tracker.in_flight_on({TP}) == 1
    tracker.forget({TP})
    tracker.done(TP, 0)  # a run on a revoked partition ending later changes nothing
    assert tracker.commits() == {OTHER: 11}


def test_canceled_ids_are_bounded_oldest_first() -> None:
    canceled = CanceledIds(limit=2)
    for prediction_id in ("a", "b", "c"):
        canceled.add(prediction_id, FailureReason.CANCELED_BY_USER)
    assert len(canceled) == 2
    assert canceled.get("a") is None
    assert canceled.get("c") is FailureReason.CANCELED_BY_USER

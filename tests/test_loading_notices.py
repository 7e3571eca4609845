"""cli.loading on real Kafka: the supervisor's `loading` for every request the executors group
has not committed, on every priority topic and partition, once each (`limit` a look, the
next look reading on), as the executor's own cold-start event (same id and sequence), and
none for what the group committed; and a prediction told `loading` whose executor never
comes is reaped after `load_grace`, the executor that comes later skipping it.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from cli.loading import LoadingNotices
from executors.worker import Executor, load_models
from inferhook.groups import GroupWatch
from inferhook.kafka import create_consumer, create_producer
from inferhook.settings import Settings
from schemas.events import LOADING_SEQUENCE, EventType, Started, event_id
from schemas.priority import Priority
from schemas.topics import Topics
from tests.executor_kit import EventLog, Requests, running
from tests.support import dispatcher_running, query, wait_until

SPIN = "inferhook/spin"


async def commit_first(settings: Settings, topic: str, partition: int, offset: int) -> None:
    """Commit `offset` for the executors group, as an executor that finished the records
    before it would."""
    consumer = create_consumer(settings.kafka, client_id="tests",
                               group_id=Topics(settings.kafka.topic_prefix).executors_group)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition)])
        await consumer.commit({TopicPartition(topic, partition): offset})
    finally:
        await consumer.stop()


async def test_every_uncommitted_request_is_told_loading_once(settings: Settings) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    async with Requests.open(settings, [SPIN]) as requests, EventLog.follow(settings) as events:
        # The executors group finished `done` (the first record of its partition) already.
        done = await requests.create(SPIN, {"milliseconds": 1}, priority=Priority.BATCH)
        where, end = await _partition_ending_with(settings, topics.requests(SPIN, Priority.BATCH),
                                                  done)
        await commit_first(settings, where.topic, where.partition, end)
        ids = [await requests.create(SPIN, {"milliseconds": 1}, owner=f"o{i}",
                                     priority=list(Priority)[i % 3]) for i in range(12)]
        watch = GroupWatch(settings.kafka)
        await watch.start()
        notices = LoadingNotices(settings.kafka, limit=5)
        await notices.start()
        try:
            load = (await watch.read([SPIN]))[SPIN]
            rounds = [await notices.announce(load.uncommitted) for _ in range(4)]
        finally:
            await notices.close()
            await watch.close()
        await events.wait_until(lambda: all(events.of(i) for i in ids))
    assert {tp.topic for tp in load.uncommitted} == set(topics.all_requests(SPIN)), \
        "requests waiting on every priority topic"
    assert [len(told) for told in rounds] == [5, 5, 2, 0], "5 a look, each once, read on past"
    assert sorted(i for told in rounds for i in told) == sorted(ids), \
        "every uncommitted request, none committed"
    for prediction_id in ids:
        (event,) = events.of(prediction_id)
        assert event.type is EventType.STARTED and isinstance(event.data, Started)
        assert event.data.phase == "loading"
        assert (event.id, event.sequence) == (event_id(prediction_id, LOADING_SEQUENCE),
                                              LOADING_SEQUENCE)
    assert events.of(done) == []


async def _partition_ending_with(settings: Settings, topic: str, prediction_id: str
                                 ) -> tuple[TopicPartition, int]:
    """The partition of `topic` whose last record is `prediction_id`'s, and its end offset."""
    consumer = create_consumer(settings.kafka, client_id="tests", group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(settings, topic))]
        ends = await consumer.end_offsets(partitions)
        consumer.assign([tp for tp in partitions if ends[tp] > 0])
        for tp in consumer.assignment():
            consumer.seek(tp, ends[tp] - 1)
        last: dict[TopicPartition, str] = {}
        while len(last) < len(consumer.assignment()):
            for tp, records in (await consumer.getmany(timeout_ms=5000)).items():
                last[tp] = dict(records[-1].headers)["ce_subject"].decode()
        (where,) = [tp for tp, subject in last.items() if subject == prediction_id]
        return where, ends[where]
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> set[int]:
    producer = create_producer(settings.kafka, client_id="tests")
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def _row(settings: Settings, prediction_id: str) -> dict[str, Any]:
    rows = await query(settings, "SELECT status, phase, error FROM predictions WHERE id = :p",
                       p=prediction_id)
    return rows[0] if rows else {}


async def test_told_loading_with_no_executor_is_reaped_after_load_grace_and_then_skipped(
        settings: Settings, clean_db: None) -> None:
    settings.webhook.reaper_interval = 0.2
    settings.webhook.load_grace = 1.0
    async with Requests.open(settings, [SPIN]) as requests, EventLog.follow(settings) as events:
        prediction_id = await requests.create(SPIN, {"milliseconds": 1})
        watch, notices = GroupWatch(settings.kafka), LoadingNotices(settings.kafka)
        await watch.start()
        await notices.start()
        try:
            # The supervisor said `loading`, then its executor never came.
            assert await notices.announce((await watch.read([SPIN]))[SPIN].uncommitted) \
                == [prediction_id]
        finally:
            await notices.close()
            await watch.close()
        async with dispatcher_running(settings, deliver=False):
            await wait_until(lambda: _ended(settings, prediction_id), what="reaped")
        reaped = await _row(settings, prediction_id)
        # An executor that comes later takes the request and skips it: the reaper's
        # cancel is on the control topic.
        async with running(Executor.dedicated(settings, load_models(settings, [SPIN]))):
            other = await requests.create(SPIN, {"milliseconds": 1})
            assert (await events.outcome(other)).type is EventType.SUCCEEDED
    assert (reaped["status"], reaped["error"]["reason"]) == ("failed", "timed_out")
    executors = [e for e in events.of(prediction_id) if e.source.startswith("inferhook/executor/")]
    assert executors == [], "the executor never ran it"


async def _ended(settings: Settings, prediction_id: str) -> bool:
    return (await _row(settings, prediction_id)).get("status") == "failed"

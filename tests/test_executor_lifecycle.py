"""Executor behaviour through real Kafka: cancel, deadlines, run time, poison input, dead letters.

Requests are written the way ingest writes them and the outcome is read back from the
events topic, so these tests need only Kafka. One partition per topic keeps the order of
requests, so a later request finishing shows that an earlier one was dealt with.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from executors.worker import Executor, load_models
from inferhook.settings import Settings
from schemas.events import (
    RUNNING_SEQUENCE,
    TERMINAL_SEQUENCE,
    Completed,
    EventType,
    Started,
    utcnow,
)
from schemas.topics import Topics
from tests.executor_kit import EventLog, Requests, running
from tests.support import example_input

MODELS = ["inferhook/digits", "inferhook/spin", "inferhook/spin-short"]
LONG_RUN = {"milliseconds": 60_000}
QUICK_RUN = {"milliseconds": 20}


@pytest.fixture
def one_partition(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with one partition per topic and a models folder holding
    digits, spin, and spin-short (spin with a 0.5 s maximum run time)."""
    models = tmp_path / "models"
    for name in ("digits", "spin"):
        shutil.copytree(settings.models_dir / name, models / name)
    shutil.copytree(settings.models_dir / "spin", models / "spin-short")
    manifest_path = models / "spin-short" / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest.update(name="inferhook/spin-short", max_run_seconds=0.5)
    manifest_path.write_text(yaml.safe_dump(manifest))
    return settings.model_copy(update={
        "models_dir": models,
        "kafka": settings.kafka.model_copy(update={"partitions": 1})})


@pytest.fixture
async def requests(one_partition: Settings) -> AsyncIterator[Requests]:
    async with Requests.open(one_partition, MODELS) as opened:
        yield opened


@pytest.fixture
async def events(one_partition: Settings) -> AsyncIterator[EventLog]:
    async with EventLog.follow(one_partition) as log:
        yield log


def executor(settings: Settings) -> Executor:
    return Executor.dedicated(settings, load_models(settings, MODELS))


def error_of(event: object) -> tuple[str, str]:
    assert isinstance(event, object) and hasattr(event, "data")
    data = event.data
    assert isinstance(data, Completed) and data.error is not None, data
    return event.type.value, data.error.reason.value  # type: ignore[attr-defined]


async def test_canceled_before_start_never_runs(one_partition: Settings, requests: Requests,
                                                events: EventLog) -> None:
    # Canceled while no executor ran: the executor reads the cancel back at start.
    early = await requests.create("inferhook/spin", LONG_RUN)
    await requests.cancel(early)
    async with running(executor(one_partition)) as serving:
        # Canceled while queued behind a run in progress.
        busy = await requests.create("inferhook/spin", {"milliseconds": 300})
        queued = await requests.create("inferhook/spin", LONG_RUN)
        await requests.cancel(queued)
        sentinel = await requests.create("inferhook/spin", QUICK_RUN)
        assert (await events.outcome(busy)).type is EventType.SUCCEEDED
        assert (await events.outcome(sentinel)).type is EventType.SUCCEEDED
        assert len(serving.control.canceled) == 2
    assert events.of(early) == []
    assert events.of(queued) == []


async def test_cancel_during_run_stops_it(one_partition: Settings, requests: Requests,
                                          events: EventLog) -> None:
    async with running(executor(one_partition)):
        long = await requests.create("inferhook/spin", LONG_RUN)
        await events.wait_until(lambda: any(e.type is EventType.STARTED for e in events.of(long)))
        await requests.cancel(long)
        outcome = await events.outcome(long)
        assert error_of(outcome) == ("inferhook.prediction.canceled", "canceled_by_user")
        assert outcome.sequence == TERMINAL_SEQUENCE
        # spin runs one at a time: this finishes only because the long run was terminated.
        after = await requests.create("inferhook/spin", QUICK_RUN)
        assert (await events.outcome(after, timeout=20)).type is EventType.SUCCEEDED
    assert len(events.terminal(long)) == 1


async def test_max_run_time_fails_timed_out(one_partition: Settings, requests: Requests,
                                            events: EventLog) -> None:
    async with running(executor(one_partition)):
        long = await requests.create("inferhook/spin-short", LONG_RUN)
        assert error_of(await events.outcome(long)) == ("inferhook.prediction.failed", "timed_out")
        after = await requests.create("inferhook/spin-short", QUICK_RUN)
        assert (await events.outcome(after, timeout=20)).type is EventType.SUCCEEDED


async def test_deadline_cancels_running_and_never_starts_late(
        one_partition: Settings, requests: Requests, events: EventLog) -> None:
    async with running(executor(one_partition)):
        past = await requests.create("inferhook/spin", QUICK_RUN,
                                     deadline=utcnow() - timedelta(seconds=1))
        soon = await requests.create("inferhook/spin", LONG_RUN,
                                     deadline=utcnow() + timedelta(seconds=1))
        assert error_of(await events.outcome(past)) == ("inferhook.prediction.canceled", "deadline")
        assert error_of(await events.outcome(soon)) == ("inferhook.prediction.canceled", "deadline")
        # Waiting behind a run in progress when its deadline passes: ends without starting.
        await requests.create("inferhook/spin", {"milliseconds": 1500})
        queued = await requests.create("inferhook/spin", QUICK_RUN,
                                       deadline=utcnow() + timedelta(seconds=0.5))
        assert error_of(await events.outcome(queued)) == ("inferhook.prediction.canceled", "deadline")
    assert [e.type for e in events.of(past)] == [EventType.CANCELED]
    assert [e.type for e in events.of(queued)] == [EventType.CANCELED]
    kinds = [e.type for e in events.of(soon)]
    assert kinds[0] is EventType.STARTED and kinds[-1] is EventType.CANCELED
    assert EventType.SUCCEEDED not in kinds


async def test_expired_in_queue_fails_without_running(one_partition: Settings, requests: Requests,
                                                      events: EventLog) -> None:
    async with running(executor(one_partition)):
        stale = await requests.create("inferhook/digits", example_input(one_partition, "inferhook/digits"),
                                      created_at=utcnow() - timedelta(hours=2))
        assert error_of(await events.outcome(stale)) == ("inferhook.prediction.failed",
                                                         "expired_in_queue")
    assert [e.type for e in events.of(stale)] == [EventType.FAILED]


async def test_poison_input_fails_one_prediction_and_executor_carries_on(
        one_partition: Settings, requests: Requests, events: EventLog) -> None:
    not_png = "data:image/png;base64," + base64.b64encode(b"\x89PNG but not really").decode()
    good = example_input(one_partition, "inferhook/digits")
    async with running(executor(one_partition)):
        poison = await requests.create("inferhook/digits", {"image": not_png})
        wrong_type = await requests.create("inferhook/spin", {"milliseconds": "soon"})
        fine = [await requests.create("inferhook/digits", good) for _ in range(3)]
        outcome = await events.outcome(poison)
        assert error_of(outcome) == ("inferhook.prediction.failed", "input_invalid")
        assert isinstance(outcome.data, Completed) and outcome.data.error is not None
        assert "image" in outcome.data.error.message
        assert error_of(await events.outcome(wrong_type)) == ("inferhook.prediction.failed",
                                                              "input_invalid")
        for prediction_id in fine:
            result = await events.outcome(prediction_id)
            assert result.type is EventType.SUCCEEDED
            assert isinstance(result.data, Completed) and result.data.output["digit"] == 7


async def test_undecodable_request_goes_to_dead_letter(one_partition: Settings, requests: Requests,
                                                       events: EventLog) -> None:
    topics = Topics(one_partition.kafka.topic_prefix)
    async with EventLog.follow(one_partition, topics.dead_letter, decode=False) as dead, \
            running(executor(one_partition)):
        await requests.producer.send_and_wait(topics.requests("inferhook/digits"), b"{not json",
                                              key=b"garbage", headers=[("ce_specversion", b"1.0")])
        after = await requests.create("inferhook/digits", example_input(one_partition, "inferhook/digits"))
        assert (await events.outcome(after)).type is EventType.SUCCEEDED
        await dead.wait_until(lambda: bool(dead.raw))
    value, headers = dead.raw[0]
    assert value == b"{not json"
    reasons = dict(headers)
    assert reasons["inferhook_error"]
    assert reasons["inferhook_topic"] == topics.requests("inferhook/digits").encode()


async def committed_offset(settings: Settings, tp: TopicPartition) -> int:
    """The executors group's committed offset of one partition (-1 when none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.kafka.topic_prefix}.executors")
    finally:
        await admin.close()
    found = offsets.get(tp)
    return found.offset if found is not None else -1


async def test_dead_letter_advances_the_commit(one_partition: Settings, requests: Requests,
                                               events: EventLog) -> None:
    topics = Topics(one_partition.kafka.topic_prefix)
    tp = TopicPartition(topics.requests("inferhook/digits"), 0)
    async with running(executor(one_partition)):
        poison = await requests.producer.send_and_wait(tp.topic, b"{not json", key=b"garbage",
                                                       headers=[("ce_specversion", b"1.0")])
        after = await requests.create("inferhook/digits", example_input(one_partition, "inferhook/digits"))
        assert (await events.outcome(after)).type is EventType.SUCCEEDED
        # The commit must move past both records: a commit held at the poison record would
        # make every later request of the partition run again after a restart or rebalance.
        wanted = poison.offset + 2
        for _ in range(100):
            if await committed_offset(one_partition, tp) >= wanted:
                break
            await asyncio.sleep(0.1)
        assert await committed_offset(one_partition, tp) == wanted


async def test_events_carry_fixed_sequences_and_metrics(one_partition: Settings, requests: Requests,
                                                        events: EventLog) -> None:
    async with running(executor(one_partition)):
        prediction = await requests.create("inferhook/spin", {"milliseconds": 30})
        outcome = await events.outcome(prediction)
        await asyncio.sleep(0)
    started, logs, done = events.of(prediction)
    assert (started.type, started.sequence) == (EventType.STARTED, RUNNING_SEQUENCE)
    assert isinstance(started.data, Started) and started.data.phase == "running"
    assert (logs.type, logs.sequence) == (EventType.LOGS, RUNNING_SEQUENCE + 1)
    assert done is outcome and done.sequence == TERMINAL_SEQUENCE
    assert isinstance(done.data, Completed)
    assert set(done.data.metrics) >= {"queue_time", "load_time", "predict_time", "total_time"}
    assert done.data.metrics["load_time"] == 0.0
    assert done.data.output["iterations"] > 0

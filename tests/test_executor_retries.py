"""Runs lost to infrastructure are retried (executors.attempts): an executor SIGKILLed
mid-run, a model that will not load; after `max_retries` the prediction fails
`infrastructure` and its request goes to the dead-letter topic. Real Kafka, real processes.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import yaml

from executors.attempts import Attempts, attempts_in_headers, lost_in_headers, next_attempt
from executors.worker import Executor, load_models
from inferhook.settings import Settings
from schemas.events import Completed, EventType, Started
from schemas.status import FailureReason
from schemas.topics import Topics
from tests.executor_kit import EventLog, Requests, running
from tests.support import start_executor_process
from tests.test_executor_delivery import SESSION_TIMEOUT_MS, with_executor


def test_attempts_are_bounded_by_the_retries() -> None:
    assert [next_attempt(previous, 2) for previous in range(4)] == [1, 2, 3, None]
    assert next_attempt(0, 0) == 1 and next_attempt(1, 0) is None


def test_attempt_counts_only_grow_and_are_bounded() -> None:
    attempts = Attempts(limit=2)
    attempts.record("a", 2)
    attempts.record("a", 1)  # a late record of an earlier attempt
    assert attempts.get("a") == 2 and attempts.get("unknown") == 0
    attempts.record("b", 1)
    attempts.record("c", 1)
    assert len(attempts) == 2 and attempts.get("a") == 0


def test_requeued_headers_are_read_back() -> None:
    headers = [("ce_id", b"x"), ("inferhook_attempts", b"2"), ("inferhook_lost", b"no file")]
    assert attempts_in_headers(headers) == 2 and lost_in_headers(headers) == "no file"
    assert attempts_in_headers([("inferhook_attempts", b"junk")]) == 0
    assert lost_in_headers([]) is None


def started_attempts(events: EventLog, prediction_id: str) -> list[int | None]:
    return [e.data.attempt for e in events.of(prediction_id)
            if e.type is EventType.STARTED and isinstance(e.data, Started)]


async def test_sigkilled_executor_run_is_retried_once_and_succeeds(settings: Settings) -> None:
    one = with_executor(settings, partitions=1)
    model = "inferhook/spin"
    topics = Topics(one.kafka.topic_prefix)
    async with Requests.open(one, [model]) as requests, EventLog.follow(one) as events, \
            EventLog.follow(one, topics.attempts) as attempt_log:
        doomed = start_executor_process(
            one, model, INFERHOOK_EXECUTOR_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS))
        try:
            prediction_id = await requests.create(model, {"milliseconds": 2500})
            await events.wait_until(lambda: 1 in started_attempts(events, prediction_id), timeout=60)
        finally:
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
        assert events.terminal(prediction_id) == []
        async with running(Executor.dedicated(one, load_models(one, [model]))) as heir:
            outcome = await events.outcome(prediction_id, timeout=60)
    assert outcome.type is EventType.SUCCEEDED and outcome.source == heir.source
    assert isinstance(outcome.data, Completed)
    assert outcome.data.metrics["attempts"] == 2
    assert started_attempts(events, prediction_id)[-1] == 2
    recorded = [e.data.attempt for e in attempt_log.of(prediction_id)  # type: ignore[union-attr]
                if e.type is EventType.ATTEMPT_STARTED]
    assert recorded == [1, 2]


def broken_models(settings: Settings, tmp_path: Path, max_retries: int) -> Settings:
    """A models folder with spin and `inferhook/broken` (spin whose ONNX file is missing)."""
    models = tmp_path / "models"
    shutil.copytree(settings.models_dir / "spin", models / "spin")
    shutil.copytree(settings.models_dir / "spin", models / "broken")
    manifest_path = models / "broken" / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest.update(name="inferhook/broken", max_retries=max_retries)
    manifest["onnx"]["path"] = "missing.onnx"
    manifest_path.write_text(yaml.safe_dump(manifest))
    return settings.model_copy(update={
        "models_dir": models, "kafka": settings.kafka.model_copy(update={"partitions": 1})})


async def test_model_that_never_loads_fails_infrastructure_and_is_dead_lettered(
        settings: Settings, tmp_path: Path) -> None:
    broken = broken_models(settings, tmp_path, max_retries=1)
    topics = Topics(broken.kafka.topic_prefix)
    model = "inferhook/broken"
    async with Requests.open(broken, [model, "inferhook/spin"]) as requests, \
            EventLog.follow(broken) as events, \
            EventLog.follow(broken, topics.dead_letter, decode=False) as dead, \
            running(Executor.pooled(broken)):
        prediction_id = await requests.create(model, {"milliseconds": 10})
        outcome = await events.outcome(prediction_id, timeout=60)
        await dead.wait_until(lambda: bool(dead.raw))
        # An input error is the model's answer, never retried.
        invalid = await requests.create("inferhook/spin", {"milliseconds": -1})
        refused = await events.outcome(invalid, timeout=60)
    assert outcome.type is EventType.FAILED and isinstance(outcome.data, Completed)
    assert outcome.data.error is not None
    assert outcome.data.error.reason is FailureReason.INFRASTRUCTURE
    assert "did not load" in outcome.data.error.message
    assert outcome.data.metrics["attempts"] == 2
    assert started_attempts(events, prediction_id) == [1, 2]  # one `loading` per attempt
    ((value, headers),) = dead.raw
    found = dict(headers)
    assert found["inferhook_reason"] == b"infrastructure"
    assert found["inferhook_attempts"] == b"2"
    assert found["ce_subject"] == prediction_id.encode() and value
    assert isinstance(refused.data, Completed) and refused.data.error is not None
    assert refused.data.error.reason is FailureReason.INPUT_INVALID
    assert refused.data.metrics["attempts"] == 1

"""Delivery semantics: a group of executors shares the load, and an executor killed mid-run
leaves its request to another one, with one outcome in the read model and one terminal
webhook.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

from dispatcher.service import run as run_dispatcher
from executors.worker import Executor, load_models
from inferhook.db import create_engine
from inferhook.settings import Settings
from schemas.events import EventType
from tests.executor_kit import EventLog, Requests, running
from tests.support import Receiver, example_input, start_executor_process

SESSION_TIMEOUT_MS = 6000
"""The broker's smallest allowed group session timeout: how soon a killed member is dropped."""


def with_executor(settings: Settings, partitions: int) -> Settings:
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"partitions": partitions}),
        "executor": settings.executor.model_copy(update={"session_timeout_ms": SESSION_TIMEOUT_MS})})


async def test_two_executors_in_one_group_share_the_load(settings: Settings) -> None:
    shared = with_executor(settings, partitions=2)
    model = "inferhook/digits"
    async with Requests.open(shared, [model]) as requests, EventLog.follow(shared) as events, \
            running(Executor.dedicated(shared, load_models(shared, [model]))) as first, \
            running(Executor.dedicated(shared, load_models(shared, [model]))) as second:
        ids = [await requests.create(model, example_input(shared, model)) for _ in range(24)]
        outcomes = [await events.outcome(prediction_id) for prediction_id in ids]
    assert all(o.type is EventType.SUCCEEDED for o in outcomes)
    by_source = {o.source for o in outcomes}
    assert by_source == {first.source, second.source}
    assert all(len(events.terminal(prediction_id)) == 1 for prediction_id in ids)


@asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_dispatcher(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def row_of(settings: Settings, prediction_id: str) -> dict[str, Any] | None:
    engine = create_engine(settings.database)
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT status, error FROM predictions WHERE id = :id"),
                                        {"id": prediction_id})).first()
            if found is None:
                return None
            history = (await conn.execute(text(
                "SELECT type FROM prediction_events WHERE prediction_id = :id ORDER BY sequence"),
                {"id": prediction_id})).scalars().all()
            return {"status": found.status, "error": found.error, "history": list(history)}
    finally:
        await engine.dispose()


async def wait_status(settings: Settings, prediction_id: str, statuses: set[str],
                      timeout: float = 60.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        row = await row_of(settings, prediction_id)
        if row is not None and row["status"] in statuses:
            return row
        await asyncio.sleep(0.1)
    raise TimeoutError(f"prediction {prediction_id} never reached {statuses}")


async def test_executor_killed_mid_run_completes_once(settings: Settings, clean_db: None,
                                                      receiver: Receiver) -> None:
    one = with_executor(settings, partitions=1)
    model = "inferhook/spin"
    async with Requests.open(one, [model]) as requests, EventLog.follow(one) as events, \
            dispatcher(one):
        doomed = start_executor_process(
            one, model, INFERHOOK_EXECUTOR_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS))
        try:
            prediction_id = await requests.create(model, {"milliseconds": 2500}, webhook=receiver.url)
            await events.wait_until(lambda: any(e.type is EventType.STARTED
                                                for e in events.of(prediction_id)), timeout=60)
            await wait_status(one, prediction_id, {"started"})
        finally:
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
        assert events.terminal(prediction_id) == [], "the killed executor finished the run"
        async with running(Executor.dedicated(one, load_models(one, [model]))) as heir:
            row = await wait_status(one, prediction_id, {"succeeded", "failed", "canceled"})
            (delivery,) = await receiver.wait_for(1)
            # Let a duplicate outcome, if one were coming, reach the read model and the outbox.
            await asyncio.sleep(1.0)
    assert row["status"] == "succeeded"
    starts = [e for e in events.of(prediction_id) if e.type is EventType.STARTED]
    assert len({e.source for e in starts}) == 2, "the request was not run again by the heir"
    (outcome,) = events.terminal(prediction_id)
    assert outcome.source == heir.source
    final = await row_of(one, prediction_id)
    assert final is not None
    terminal_rows = [t for t in final["history"] if t.endswith((".succeeded", ".failed", ".canceled"))]
    assert terminal_rows == ["inferhook.prediction.succeeded"]
    terminal_hooks = [d for d in receiver.requests if d.json()["status"] == "succeeded"]
    assert len({d.headers["webhook-id"] for d in terminal_hooks}) == 1
    assert delivery.json()["id"] == prediction_id


async def test_sigterm_drains_the_run_in_flight(settings: Settings) -> None:
    one = with_executor(settings, partitions=1)
    model = "inferhook/spin"
    async with Requests.open(one, [model]) as requests, EventLog.follow(one) as events:
        process = start_executor_process(one, model)
        try:
            prediction_id = await requests.create(model, {"milliseconds": 1500})
            await events.wait_until(lambda: any(e.type is EventType.STARTED
                                                for e in events.of(prediction_id)), timeout=60)
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert code == 0
        (outcome,) = events.terminal(prediction_id)
        assert outcome.type is EventType.SUCCEEDED


async def test_pooled_executor_process_loads_on_first_request(settings: Settings) -> None:
    one = with_executor(settings, partitions=1)
    model = "inferhook/spin"
    async with Requests.open(one, [model, "inferhook/digits"]) as requests, \
            EventLog.follow(one) as events:
        process = start_executor_process(one, model, INFERHOOK_EXECUTOR_MODE="pooled")
        try:
            prediction_id = await requests.create(model, {"milliseconds": 10})
            outcome = await events.outcome(prediction_id, timeout=60)
            # Not among the models it was told to serve: left for another executor.
            other = await requests.create("inferhook/digits", example_input(one, "inferhook/digits"))
            warm = await requests.create(model, {"milliseconds": 10})
            assert (await events.outcome(warm)).type is EventType.SUCCEEDED
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 60)
    assert outcome.type is EventType.SUCCEEDED
    phases = [e.data.phase for e in events.of(prediction_id)  # type: ignore[union-attr]
              if e.type is EventType.STARTED]
    assert phases == ["loading", "running"]
    assert [e.data.phase for e in events.of(warm)  # type: ignore[union-attr]
            if e.type is EventType.STARTED] == ["running"]
    assert events.of(other) == []

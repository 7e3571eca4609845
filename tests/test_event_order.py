"""Invariant 1: the outcome never depends on the order in which a prediction's events arrive.

The pure rule is checked over every arrival order and every cut into batches; the projector
over real Kafka and Postgres, with the early events kept across a dispatcher restart.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import uuid
from collections.abc import Sequence

import pytest

from dispatcher.fold import Current, Folded, Held, fold
from inferhook.settings import Settings
from schemas.events import (
    TERMINAL_SEQUENCE,
    Completed,
    Created,
    EventType,
    Logs,
    Output,
    PredictionEvent,
    Started,
    utcnow,
)
from schemas.webhooks import webhook_id
from tests.support import (
    EventWriter,
    Receiver,
    dispatcher_running,
    query,
    start_dispatcher_process,
    wait_until,
)
from tests.test_dispatcher_policy import BASE, T0, created, done, event

RUN = [event(1, EventType.STARTED, Started(started_at=T0, phase="loading", load_time=0.5)),
       event(2, EventType.STARTED, Started(started_at=T0, phase="running")),
       event(3, EventType.LOGS, Logs(logs="a\n")),
       event(4, EventType.OUTPUT, Output(output=1)),
       done(TERMINAL_SEQUENCE)]


def project(batches: Sequence[Sequence[PredictionEvent]]) -> tuple[Current, list[Folded]]:
    """Fold `batches` one after the other, keeping held events between them as the
    projector does in Postgres (and ignoring `changed`/`new` bookkeeping)."""
    rows: dict[str, Current] = {}
    stored: dict[str, list[Held]] = {}
    results = []
    for batch in batches:
        folded = fold(rows, batch, BASE, held={k: list(v) for k, v in stored.items()})
        for pid in folded.unpark:
            stored.pop(pid, None)
        for item in folded.park:
            stored.setdefault(item.event.subject, []).append(item)
        results.append(folded)
    assert not stored, "events still held after created"
    return rows["p1"], results


def cuts(events: list[PredictionEvent]) -> list[list[list[PredictionEvent]]]:
    """Every way to cut `events` into consecutive non-empty batches."""
    ways = []
    for mask in range(2 ** (len(events) - 1)):
        batches, current = [], [events[0]]
        for index, item in enumerate(events[1:]):
            if mask >> index & 1:
                batches.append(current)
                current = []
            current.append(item)
        batches.append(current)
        ways.append(batches)
    return ways


def summary(row: Current, results: list[Folded]) -> tuple[object, ...]:
    intents = [(i.event_type, i.sequence) for f in results for i in f.intents]
    history = sorted(h.sequence for f in results for h in f.history)
    return (row.status, row.output, row.logs, row.phase, row.metrics, row.last_sequence,
            tuple(intents), tuple(history))


def test_every_arrival_order_before_created_gives_the_in_order_outcome() -> None:
    expected = summary(*project([[created(), *RUN]]))
    assert expected[0] == "succeeded" and expected[2] == "a\n"
    checked = 0
    for early in range(len(RUN) + 1):
        for order in itertools.permutations(RUN[:early]):
            arrivals = [*order, created(), *RUN[early:]]
            for batches in cuts(arrivals):
                assert summary(*project(batches)) == expected, [
                    [e.sequence for e in b] for b in batches]
                checked += 1
    assert checked == 154 * 2 ** len(RUN)  # early orders times cuts


def test_held_events_apply_when_ingest_wrote_the_row_first() -> None:
    # The events arrive before `created` and before ingest's own insert of the pending row;
    # the next batch finds the row (written by ingest) and applies them at once.
    rows: dict[str, Current] = {}
    held = fold(rows, [done(TERMINAL_SEQUENCE), RUN[1]], BASE).park
    fold(rows, [created()], BASE)  # stands for the row ingest wrote (no held events passed)
    for row in rows.values():
        row.changed = row.new = False
    folded = fold(rows, [RUN[2]], BASE, held={"p1": held})
    assert folded.unpark == {"p1"}
    assert rows["p1"].status == "succeeded"
    assert [i.event_type for i in folded.intents] == [EventType.STARTED, EventType.SUCCEEDED]


# --- through Kafka and Postgres --------------------------------------------------------------

def _created(receiver: Receiver) -> Created:
    return Created(owner="alice", model="inferhook/digits", input={"n": 1},
                   webhook=receiver.url, webhook_events_filter=["start", "completed"],
                   created_at=utcnow())


@pytest.mark.usefixtures("clean_db")
async def test_outcome_and_webhooks_survive_events_before_created(
        settings: Settings, receiver: Receiver) -> None:
    pid = str(uuid.uuid4())
    async with EventWriter(settings) as events, dispatcher_running(settings):
        await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                                Completed(completed_at=utcnow(), output={"digit": 7}))
        await events.send(pid, 2, Started(started_at=utcnow()))

        async def held() -> bool:
            rows = await query(settings, "SELECT count(*) AS n FROM parked_events "
                                         "WHERE prediction_id = :p", p=pid)
            return bool(rows[0]["n"] == 2)

        await wait_until(held, what="both early events held")
        assert await query(settings, "SELECT id FROM predictions WHERE id = :p", p=pid) == []
        await events.send(pid, 0, _created(receiver))
        hooks = await receiver.wait_for(3)
        await asyncio.sleep(0.5)  # nothing more may come
    # `start` at create time (as it was then: pending), whatever arrived before `created`.
    assert [(h.json()["status"], h.headers["webhook-id"]) for h in receiver.requests] == [
        ("pending", webhook_id(pid, 0)), ("started", webhook_id(pid, 2)),
        ("succeeded", webhook_id(pid, TERMINAL_SEQUENCE))]
    assert hooks[2].json()["output"] == {"digit": 7}
    row = (await query(settings, "SELECT status, output FROM predictions WHERE id = :p", p=pid))[0]
    assert row == {"status": "succeeded", "output": {"digit": 7}}
    history = await query(settings, "SELECT sequence FROM prediction_events "
                                    "WHERE prediction_id = :p ORDER BY sequence", p=pid)
    assert [h["sequence"] for h in history] == [0, 2, TERMINAL_SEQUENCE]
    assert await query(settings, "SELECT * FROM parked_events") == []


@pytest.mark.usefixtures("clean_db")
async def test_held_events_survive_a_dispatcher_kill(settings: Settings,
                                                     receiver: Receiver) -> None:
    pids = [str(uuid.uuid4()) for _ in range(20)]
    async with EventWriter(settings) as events:
        for pid in pids:
            await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                                    Completed(completed_at=utcnow(), output=pid), wait=False)
        await events.flush()
        process = start_dispatcher_process(settings)
        try:
            async def all_held() -> bool:
                rows = await query(settings, "SELECT count(*) AS n FROM parked_events")
                return bool(rows[0]["n"] == len(pids))

            await wait_until(all_held, timeout=60, what="every early outcome held")
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            for pid in pids:
                await events.send(pid, 0, _created(receiver), wait=False)
            await events.flush()
            process = start_dispatcher_process(settings)
            await receiver.wait_for(len(pids), timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
    statuses = await query(settings, "SELECT id, status, output FROM predictions")
    assert sorted((r["id"], r["status"], r["output"]) for r in statuses) == sorted(
        (pid, "succeeded", pid) for pid in pids)
    assert {h.json()["id"] for h in receiver.requests} == set(pids)

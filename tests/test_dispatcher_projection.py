"""Projection of inferhook.events into Postgres: exactly once, replay-safe, crash-safe.

Also the reaper and the retention sweep, which end and clean up predictions through the
same path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from inferhook.db import PREDICTION_CHANGED
from inferhook.settings import Settings
from schemas.events import (
    TERMINAL_SEQUENCE,
    Completed,
    Created,
    EventType,
    Logs,
    Started,
    utcnow,
)
from schemas.feed import notice_owner
from tests.support import (
    EventWriter,
    Receiver,
    dispatcher_running,
    query,
    start_dispatcher_process,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("clean_db")

DUMPED = {"predictions": "id", "prediction_events": "prediction_id, sequence",
          "webhook_deliveries": "id", "webhook_attempts": "id"}


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[EventWriter]:
    async with EventWriter(settings) as writer:
        yield writer


async def dump(settings: Settings) -> dict[str, list[str]]:
    """Every row of the read model and outbox tables, as JSON text, in key order."""
    return {table: [r["row"] for r in await query(
        settings, f"SELECT row_to_json(t)::text AS row FROM {table} t ORDER BY {order}")]
        for table, order in DUMPED.items()}


async def projected_offsets(settings: Settings) -> int:
    rows = await query(settings, "SELECT COALESCE(sum(next_offset), 0) AS n FROM "
                                 "dispatcher_offsets WHERE topic = :t",
                       t=f"{settings.kafka.topic_prefix}.events")
    return int(rows[0]["n"])


async def write_workload(events: EventWriter, predictions: int, logs_each: int,
                         webhook: str | None = None) -> dict[str, str]:
    """Created, started, `logs_each` logs lines, succeeded per prediction; expected logs back."""
    expected: dict[str, str] = {}
    now = utcnow()
    for _ in range(predictions):
        pid = str(uuid.uuid4())
        await events.send(pid, 0, Created(owner="alice", model="inferhook/digits",
                                          input={"n": 1}, webhook=webhook,
                                          webhook_events_filter=["completed"], created_at=now),
                          wait=False)
        await events.send(pid, 2, Started(started_at=now), wait=False)
        lines = [f"{pid[:8]} line {n}\n" for n in range(logs_each)]
        for n, line in enumerate(lines):
            await events.send(pid, 3 + n, Logs(logs=line), wait=False)
        await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                                Completed(completed_at=now, output={"pid": pid}), wait=False)
        expected[pid] = "".join(lines)
    await events.flush()
    return expected


async def check_projected(settings: Settings, expected: dict[str, str], events_each: int) -> None:
    rows = await query(settings, "SELECT id, status, logs, output FROM predictions")
    assert {r["id"]: r["logs"] for r in rows} == expected, "an event was lost or applied twice"
    assert {r["status"] for r in rows} == {"succeeded"}
    history = await query(settings, "SELECT prediction_id, count(*) AS n FROM prediction_events "
                                    "GROUP BY prediction_id")
    assert {r["prediction_id"]: r["n"] for r in history} == {p: events_each for p in expected}


async def test_projection_applies_every_event_once_and_notifies(settings: Settings,
                                                                events: EventWriter) -> None:
    listener = await asyncpg.connect(settings.database.url.get_secret_value())
    notices: list[str] = []
    await listener.add_listener(PREDICTION_CHANGED, lambda *args: notices.append(args[3]))
    try:
        expected = await write_workload(events, predictions=50, logs_each=5)
        total = 50 * 8
        async with dispatcher_running(settings, deliver=False, housekeeping=False):
            await wait_until(lambda: _offsets_reach(settings, total), what="all events projected")
        await check_projected(settings, expected, events_each=8)
        await wait_until(lambda: _notices_for(notices, expected), timeout=5, what="notices")
    finally:
        await listener.close()
    changes = [n for n in notices if notice_owner(n) is None]
    assert all(n.split(":")[1] in {"pending", "started", "succeeded"} for n in changes)
    assert {notice_owner(n) for n in notices} - {None} == {"alice"}  # the account feed's wake-up


async def _offsets_reach(settings: Settings, total: int) -> bool:
    return await projected_offsets(settings) >= total


async def _notices_for(notices: list[str], expected: dict[str, str]) -> bool:
    return {f"{pid}:succeeded" for pid in expected} <= set(notices)


async def test_replay_from_offset_zero_leaves_postgres_unchanged(
        settings: Settings, events: EventWriter, receiver: Receiver) -> None:
    await write_workload(events, predictions=30, logs_each=3, webhook=receiver.url)
    total = 30 * 6
    async with dispatcher_running(settings, housekeeping=False):
        await wait_until(lambda: _offsets_reach(settings, total), what="all events projected")
        await receiver.wait_for(30)
        await wait_until(lambda: _all_delivered(settings), what="all delivered")
    before = await dump(settings)
    assert len(before["predictions"]) == 30 and len(before["webhook_deliveries"]) == 30
    await query(settings, "DELETE FROM dispatcher_offsets RETURNING 1")
    async with dispatcher_running(settings, housekeeping=False):
        await wait_until(lambda: _offsets_reach(settings, total), what="replay finished")
    assert await dump(settings) == before
    assert len(receiver.requests) == 30


async def _all_delivered(settings: Settings) -> bool:
    rows = await query(settings, "SELECT count(*) AS n FROM webhook_deliveries "
                                 "WHERE state <> 'delivered'")
    return int(rows[0]["n"]) == 0


async def test_dispatcher_killed_mid_projection_loses_and_repeats_nothing(
        settings: Settings, events: EventWriter) -> None:
    predictions, logs_each = 1500, 6
    expected = await write_workload(events, predictions, logs_each)
    total = predictions * (logs_each + 3)
    process = start_dispatcher_process(settings)
    try:
        await wait_until(lambda: _offsets_between(settings, 1, total), timeout=60,
                         what="projection under way")
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        assert await projected_offsets(settings) < total, "finished before the kill"
        process = start_dispatcher_process(settings)
        await wait_until(lambda: _offsets_reach(settings, total), timeout=90,
                         what="projection finished after the restart")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
    await check_projected(settings, expected, events_each=logs_each + 3)


async def _offsets_between(settings: Settings, low: int, high: int) -> bool:
    return low <= await projected_offsets(settings) < high


async def test_reaper_ends_overdue_predictions_with_reasons(settings: Settings,
                                                            events: EventWriter) -> None:
    settings.webhook.reaper_interval = 0.2
    now = utcnow()
    hour_ago = now - timedelta(hours=1)
    overdue = str(uuid.uuid4())        # Cancel-After deadline passed
    stale = str(uuid.uuid4())          # queued longer than the model's queue deadline
    orphan = str(uuid.uuid4())         # started long ago; its executor is gone
    healthy = str(uuid.uuid4())
    loading = str(uuid.uuid4())        # a cold start loading for 20 minutes: within load_grace
    slow_load = str(uuid.uuid4())      # running after a 20-minute load: the run time is short
    twenty_ago = now - timedelta(minutes=20)
    for pid, created_at, deadline in ((overdue, now, now - timedelta(seconds=1)),
                                      (stale, now - timedelta(hours=2), None),
                                      (orphan, hour_ago, None), (healthy, now, None),
                                      (loading, twenty_ago, None), (slow_load, twenty_ago, None)):
        await events.send(pid, 0, Created(owner="alice", model="inferhook/digits", input={},
                                          created_at=created_at, deadline=deadline))
    await events.send(orphan, 2, Started(started_at=hour_ago))
    await events.send(healthy, 2, Started(started_at=now))
    await events.send(loading, 1, Started(started_at=twenty_ago, phase="loading"))
    await events.send(slow_load, 1, Started(started_at=twenty_ago, phase="loading"))
    await events.send(slow_load, 2, Started(started_at=twenty_ago, phase="running",
                                            load_time=1195.0))
    async with dispatcher_running(settings, deliver=False):
        await wait_until(lambda: _ended(settings, 3), what="three reaped")
        await asyncio.sleep(0.5)  # more passes: nothing is reaped twice, healthy stays
    rows = {r["id"]: r for r in await query(settings, "SELECT id, status, error FROM predictions")}
    assert (rows[overdue]["status"], rows[overdue]["error"]["reason"]) == ("canceled", "deadline")
    assert (rows[stale]["status"], rows[stale]["error"]["reason"]) == ("failed",
                                                                       "expired_in_queue")
    assert (rows[orphan]["status"], rows[orphan]["error"]["reason"]) == ("failed", "timed_out")
    assert rows[healthy]["status"] == rows[loading]["status"] == "started"
    assert rows[slow_load]["status"] == "started"


async def _ended(settings: Settings, count: int) -> bool:
    rows = await query(settings, "SELECT count(*) AS n FROM predictions "
                                 "WHERE status IN ('canceled', 'failed')")
    return int(rows[0]["n"]) >= count


async def test_retention_clears_expired_data(settings: Settings, events: EventWriter) -> None:
    settings.webhook.retention_interval = 0.2
    now = utcnow()
    expired, kept = str(uuid.uuid4()), str(uuid.uuid4())
    for pid, ttl in ((expired, 0.0), (kept, 3600.0)):
        await events.send(pid, 0, Created(owner="alice", model="inferhook/digits",
                                          input={"secret": 1}, created_at=now,
                                          result_ttl_seconds=ttl))
        await events.send(pid, 3, Logs(logs="private\n"))
        await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                                Completed(completed_at=now, output={"secret": 2}))
    async with dispatcher_running(settings, deliver=False):
        await wait_until(lambda: _removed(settings, expired), what="data removed")
    rows = {r["id"]: r for r in await query(
        settings, "SELECT id, input, output, logs, data_removed, status FROM predictions")}
    assert rows[expired] == {"id": expired, "input": None, "output": None, "logs": "",
                             "data_removed": True, "status": "succeeded"}
    assert rows[kept]["output"] == {"secret": 2} and not rows[kept]["data_removed"]
    history = await query(settings, "SELECT data::text AS d FROM prediction_events "
                                    "WHERE prediction_id = :p", p=expired)
    assert not any("secret" in h["d"] or "private" in h["d"] for h in history)


async def _removed(settings: Settings, pid: str) -> bool:
    rows = await query(settings, "SELECT data_removed FROM predictions WHERE id = :p", p=pid)
    return bool(rows) and bool(rows[0]["data_removed"])

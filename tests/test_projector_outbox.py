"""The projector's reads and writes besides the rows, against Postgres: held events and the
webhook outbox, which a batch reads in LOCK and writes in APPLY (store.predictions), one
statement each, on either connection kind.

One prediction with a webhook for every event type: its `started` comes before its
`created` and is held, then applied with it; a second progress webhook takes the place of
the untried one; the terminal webhook supersedes the untried progress row and the `start`
row waiting for a retry. On asyncpg's connection a batch sends LOCK and APPLY between its
BEGIN and COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.projector import project_batch
from inferhook.db import create_engine, driver_transaction
from inferhook.filelinks import FileLinks
from inferhook.settings import Settings
from schemas.events import (
    TERMINAL_SEQUENCE,
    Completed,
    Created,
    EventData,
    EventType,
    Logs,
    Output,
    PredictionEvent,
    Started,
    event_id,
    utcnow,
)
from store.files import PostgresFiles
from store.records import Connection
from tests.support import query

pytestmark = pytest.mark.usefixtures("clean_db")

WEBHOOK = "http://127.0.0.1:9/hook"
CREATED, STARTED, OUTPUT, LOGS = (t.value for t in (EventType.CREATED, EventType.STARTED,
                                                     EventType.OUTPUT, EventType.LOGS))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database)
    yield engine
    await engine.dispose()


def event(prediction_id: str, sequence: int, event_type: EventType,
          data: EventData) -> PredictionEvent:
    return PredictionEvent(id=event_id(prediction_id, sequence), source="inferhook/test",
                           type=event_type, time=utcnow(), subject=prediction_id,
                           sequence=sequence, data=data)


class Projector:
    """Projects batches in their own transactions, counting the statements sent on
    asyncpg's connection."""

    def __init__(self, engine: AsyncEngine, via: str) -> None:
        self.engine, self.via = engine, via
        self.offset = 0
        self.sent: list[str] = []

    def _log(self, logged: asyncpg.connection.LoggedQuery) -> None:
        self.sent.append(logged.query)

    async def project(self, *events: PredictionEvent) -> int:
        """Project one batch; how many statements it sent inside its transaction (counted on
        asyncpg's connection only)."""
        self.offset += len(events)
        self.sent.clear()
        transaction: AbstractAsyncContextManager[Connection] = (
            driver_transaction(self.engine) if self.via == "driver" else self.engine.begin())
        async with transaction as conn:
            if isinstance(conn, asyncpg.Connection):
                conn.add_query_logger(self._log)
            try:
                await project_batch(conn, list(events), {("projector-test", 0): self.offset},
                                    files=PostgresFiles(),
                                    links=FileLinks("http://127.0.0.1", b"test"),
                                    progress_interval=60.0)
            finally:
                if isinstance(conn, asyncpg.Connection):
                    conn.remove_query_logger(self._log)
        return len(self.sent)


async def outbox(settings: Settings, pid: str) -> list[dict[str, Any]]:
    return await query(settings, "SELECT id, sequence, event_type, state, webhook_id FROM "
                                 "webhook_deliveries WHERE prediction_id = :p ORDER BY sequence",
                       p=pid)


@pytest.mark.parametrize("via", ["sqlalchemy", "driver"])
async def test_held_events_and_outbox_are_read_in_lock_and_written_in_apply(
        engine: AsyncEngine, settings: Settings, via: str) -> None:
    projector, pid, now = Projector(engine, via), f"proj-{via}-{uuid.uuid4().hex[:8]}", utcnow()

    # The `started` of a prediction not known yet is held.
    await projector.project(event(pid, 2, EventType.STARTED, Started(started_at=now)))
    assert await query(settings, "SELECT sequence FROM parked_events WHERE prediction_id = :p",
                       p=pid) == [{"sequence": 2}]
    assert await query(settings, "SELECT 1 FROM predictions WHERE id = :p", p=pid) == []

    # Its `created` applies it and releases it; the create-time `start` webhook comes first,
    # then the one of `started`, and the output webhook queues behind them.
    await projector.project(
        event(pid, 0, EventType.CREATED, Created(
            owner="alice", model="inferhook/digits", input={"n": 1}, webhook=WEBHOOK,
            webhook_events_filter=["start", "output", "logs", "completed"], created_at=now)),
        event(pid, 3, EventType.OUTPUT, Output(output=3)))
    assert await query(settings, "SELECT 1 FROM parked_events WHERE prediction_id = :p",
                       p=pid) == []
    first = await outbox(settings, pid)
    assert [(r["sequence"], r["event_type"], r["state"]) for r in first] == [
        (0, CREATED, "pending"), (2, STARTED, "pending"), (3, OUTPUT, "pending")]

    # A newer progress webhook takes the untried row's place (same row, newer message).
    sent = await projector.project(event(pid, 4, EventType.LOGS, Logs(logs="x\n")))
    second = await outbox(settings, pid)
    assert [(r["id"], r["sequence"], r["event_type"]) for r in second] == [
        (first[0]["id"], 0, CREATED), (first[1]["id"], 2, STARTED), (first[2]["id"], 4, LOGS)]
    assert second[2]["webhook_id"] != first[2]["webhook_id"]

    # `started`'s `start` failed an attempt and waits for a retry; the terminal webhook
    # supersedes it and the untried progress row, and is queued itself (the create-time
    # `start`, untried and not progress, still goes out first).
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_deliveries SET attempts = 1 WHERE id = :id"),
                           {"id": first[1]["id"]})
    sent_terminal = await projector.project(event(
        pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED, Completed(completed_at=now, output="done")))
    assert [(r["sequence"], r["event_type"], r["state"]) for r in await outbox(settings, pid)] == [
        (0, CREATED, "pending"), (2, STARTED, "superseded"), (4, LOGS, "superseded"),
        (TERMINAL_SEQUENCE, EventType.SUCCEEDED.value, "pending")]
    stored = await query(settings, "SELECT status, logs, output FROM predictions WHERE id = :p",
                         p=pid)
    assert stored == [{"status": "succeeded", "logs": "x\n", "output": "done"}]

    if via == "driver":
        assert (sent, sent_terminal) == (2, 2), projector.sent  # LOCK, APPLY

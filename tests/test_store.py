"""store/: every column of a prediction survives each way a row is written.

The batched writes expand JSON with `jsonb_to_recordset`, which ignores keys missing from
its type list: a column left out is lost without an error. The lists derive from the table
model; these tests fill every column with a value that is not its default and read it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dispatcher.fold import COLUMNS, Current
from inferhook.db import create_engine, driver_connection, driver_transaction
from inferhook.settings import Settings
from schemas.events import utcnow
from schemas.tables import PredictionRow
from store import predictions
from store.records import fetch, positional

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database)
    yield engine
    await engine.dispose()


def every_column_set(prediction_id: str) -> PredictionRow:
    """A row in which no column holds its default (so a dropped column shows)."""
    now = utcnow().replace(microsecond=0)
    return PredictionRow(
        id=prediction_id, owner="acme", model="inferhook/digits", status="started",
        input={"image": [1, 2]}, output={"digit": 3}, error={"reason": "x", "message": "y"},
        logs="a log line\n", webhook="http://127.0.0.1:9/hook",
        webhook_events_filter=["start", "completed"], metrics={"predict_time": 0.5},
        created_at=now, started_at=now + timedelta(seconds=1),
        completed_at=now + timedelta(seconds=2), expires_at=now + timedelta(seconds=3),
        data_removed=True, last_sequence=7, deadline=now + timedelta(seconds=4),
        result_ttl_seconds=60.0, phase="running", kind="embeddings",
        task_options={"encoding_format": "base64"}, priority="batch", api_key_id="digest-of-a-key")


def test_current_has_a_field_for_every_column() -> None:
    fields = {f.name for f in dataclasses.fields(Current)}
    assert set(COLUMNS) == set(PredictionRow.model_fields)
    assert not set(COLUMNS) - fields


def test_every_column_is_not_at_its_default() -> None:
    row = every_column_set("p")
    fields = PredictionRow.model_fields
    same = [c for c in COLUMNS
            if getattr(row, c) == fields[c].get_default(call_default_factory=True)]
    assert same == []


async def read(engine: AsyncEngine, prediction_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await predictions.get(conn, prediction_id, "acme")
    assert row is not None
    return row.model_dump()


async def test_insert_pending_keeps_every_column(engine: AsyncEngine) -> None:
    row = every_column_set("store-pending")
    async with engine.begin() as conn:
        await predictions.insert_pending(conn, row.model_dump())
    assert await read(engine, row.id) == row.model_dump()


async def apply(engine: AsyncEngine, via: str, new: list[dict[str, Any]],
                existing: list[dict[str, Any]]) -> None:
    """The projector's write of rows, on SQLAlchemy's connection or the driver's own."""
    writes: dict[str, Any] = {"new": new, "existing": existing, "history": [],
                              "notifications": [], "offsets": {("store-test", 0): 1}}
    if via == "driver":
        async with driver_transaction(engine) as raw:
            await predictions.apply(raw, **writes)
    else:
        async with engine.begin() as conn:
            await predictions.apply(conn, **writes)


@pytest.mark.parametrize("via", ["sqlalchemy", "driver"])
async def test_projection_write_keeps_every_column(engine: AsyncEngine, via: str) -> None:
    row = every_column_set(f"store-projected-{via}")
    current = Current(**row.model_dump(), full=True, new=True, changed=True, output_set=True)
    await apply(engine, via, [current.values(whole=True)], [])
    assert await read(engine, row.id) == row.model_dump()

    # An existing row changes by deltas: logs and metrics are appended, output set when set.
    later = dataclasses.replace(
        current, status="succeeded", output={"digit": 4}, error=None, phase=None,
        completed_at=row.created_at + timedelta(seconds=9), expires_at=None, deadline=None,
        last_sequence=9, result_ttl_seconds=30.0, logs_delta="more\n",
        metrics_delta={"total_time": 1.0}, new=False)
    await apply(engine, via, [], [later.values(whole=False)])
    stored = await read(engine, row.id)
    assert stored == {**row.model_dump(), "status": "succeeded", "output": {"digit": 4},
                      "error": None, "phase": None, "completed_at": later.completed_at,
                      "expires_at": None, "deadline": None, "last_sequence": 9,
                      "result_ttl_seconds": 30.0, "logs": "a log line\nmore\n",
                      "metrics": {"predict_time": 0.5, "total_time": 1.0}}


def test_positional_numbers_named_parameters_and_leaves_casts() -> None:
    statement = text("SELECT CAST(:a AS int) + :b, :a, 'x'::text, make_interval(secs => :b)")
    sql, names = positional(statement)
    assert sql == "SELECT CAST($1 AS int) + $2, $1, 'x'::text, make_interval(secs => $2)"
    assert names == ("a", "b")


async def test_fetch_reads_the_same_through_either_connection(engine: AsyncEngine) -> None:
    statement = text("SELECT CAST(:n AS int) AS n, CAST(:doc AS jsonb) AS doc, "
                     "CAST(:ids AS text[]) AS ids")
    params = {"n": 3, "doc": '{"a": [1, 2]}', "ids": ["x", "y"]}
    async with engine.connect() as conn:
        through_sqlalchemy = await fetch(conn, statement, params)
    async with driver_connection(engine) as raw:
        through_driver = await fetch(raw, statement, params)
    assert [dict(r) for r in through_driver] == [dict(r) for r in through_sqlalchemy] == [
        {"n": 3, "doc": {"a": [1, 2]}, "ids": ["x", "y"]}]


async def test_a_driver_connection_that_died_is_replaced(engine: AsyncEngine,
                                                         settings: Settings) -> None:
    single = create_async_engine(settings.database.sqlalchemy_url, pool_size=1, max_overflow=0)
    try:
        async with driver_connection(single) as raw:
            first = raw.get_server_pid()
        async with engine.connect() as other:  # another pool: `single` holds one connection
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError,
                            asyncpg.InternalClientError, OSError)):
            async with driver_connection(single) as raw:
                assert raw.get_server_pid() == first  # the pool's one connection, now dead
                await raw.execute("SELECT 1")
        async with driver_connection(single) as raw:
            assert raw.get_server_pid() != first
            assert await raw.fetchval("SELECT 1") == 1
    finally:
        await single.dispose()

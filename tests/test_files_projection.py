"""The projector stores binary outputs as files exactly once: events that arrive before
their prediction is known, and a replay of the whole topic, change nothing twice."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatcher.outfiles import output_file_id
from inferhook.settings import Settings
from schemas.events import TERMINAL_SEQUENCE, Completed, Created, EventType, Output, utcnow
from tests.support import EventWriter, dispatcher_running, query, wait_until

pytestmark = pytest.mark.usefixtures("clean_db")

DUMPED = {"files": "SELECT id, owner, purpose, filename, content_type, size, md5(content) AS md5, "
                   "created_at, expires_at, prediction_id FROM files ORDER BY id",
          "predictions": "SELECT id, status, output, expires_at FROM predictions ORDER BY id",
          "prediction_events": "SELECT prediction_id, sequence, data FROM prediction_events "
                               "ORDER BY prediction_id, sequence"}


def png(n: int) -> str:
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes([n]) * 50).decode()


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[EventWriter]:
    async with EventWriter(settings) as writer:
        yield writer


async def dump(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    return {table: await query(settings, sql) for table, sql in DUMPED.items()}


async def offsets(settings: Settings) -> int:
    rows = await query(settings, "SELECT COALESCE(sum(next_offset), 0) AS n FROM dispatcher_offsets")
    return int(rows[0]["n"])


async def test_outputs_become_files_once_in_any_order_and_on_replay(
        settings: Settings, events: EventWriter) -> None:
    now = utcnow()
    early, normal = str(uuid.uuid4()), str(uuid.uuid4())
    # `early`: its output and outcome reach the projector before its `created`.
    await events.send(early, 3, Output(output={"frames": [png(1)]}))
    await events.send_typed(early, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                            Completed(completed_at=now, output={"images": [png(2)]}))
    for pid in (early, normal):
        await events.send(pid, 0, Created(owner="carol", model="inferhook/dcgan-faces",
                                          input={"n": 1}, created_at=now,
                                          result_ttl_seconds=600.0))
    await events.send_typed(normal, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                            Completed(completed_at=now, output={"images": [png(3), png(4)]}))
    async with dispatcher_running(settings, deliver=False, housekeeping=False):
        await wait_until(lambda: _offsets_reach(settings, 5), what="all events projected")
    before = await dump(settings)
    expected = {output_file_id(early, 3, ("frames", 0)),
                output_file_id(early, TERMINAL_SEQUENCE, ("images", 0)),
                output_file_id(normal, TERMINAL_SEQUENCE, ("images", 0)),
                output_file_id(normal, TERMINAL_SEQUENCE, ("images", 1))}
    assert {f["id"] for f in before["files"]} == expected
    assert {f["owner"] for f in before["files"]} == {"carol"}
    outputs = {p["id"]: p["output"] for p in before["predictions"]}
    assert outputs[early]["images"][0]["file_id"] == output_file_id(
        early, TERMINAL_SEQUENCE, ("images", 0))
    assert "data:" not in str(before["prediction_events"])
    assert not await query(settings, "SELECT 1 FROM parked_events")
    await query(settings, "DELETE FROM dispatcher_offsets RETURNING 1")
    async with dispatcher_running(settings, deliver=False, housekeeping=False):
        await wait_until(lambda: _offsets_reach(settings, 5), what="replay finished")
    assert await dump(settings) == before


async def _offsets_reach(settings: Settings, total: int) -> bool:
    return await offsets(settings) >= total

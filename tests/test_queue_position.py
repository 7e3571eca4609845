"""Queue position and estimated start of pending predictions: the estimate's rule without
servers, and GET and the event stream through the real stack as a queue drains."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.position import SAMPLE_STARTS, WINDOW_SECONDS, estimated_start, position, throughput
from tests.support import Stack

SPIN = "inferhook/spin"


@dataclass
class G:
    priority: str
    owner: str
    n: int
    earlier: int


def test_position_counts_higher_priorities_and_turns_between_owners() -> None:
    groups = [G("interactive", "c", 2, 2), G("default", "a", 500, 500), G("default", "b", 10, 3),
              G("batch", "a", 50, 50)]
    # b's 4th: 2 interactive, its own 3 earlier, and a's turns before it (4): position 10.
    assert position(groups, priority="default", owner="b") == 2 + 3 + 4 + 1
    assert position(groups, priority="interactive", owner="d") == 2  # turns: one of c's first
    assert position([G("default", "a", 1, 0)], priority="default", owner="a") == 1
    # batch waits for every default and interactive prediction, and for its own earlier ones.
    assert position(groups, priority="batch", owner="a") == 2 + 510 + 50 + 1


def test_estimated_start_needs_an_observed_throughput() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert estimated_start(10, None, now) is None
    assert estimated_start(10, 0.0, now) is None
    assert estimated_start(10, 5.0, now) == datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)


def test_throughput_counts_the_window_or_the_latest_sample() -> None:
    assert throughput(0, None) == 0.0
    assert throughput(30, 50.0) == 30 / WINDOW_SECONDS  # a few: over the whole window
    # once the sample is full, over the time the latest starts took
    assert throughput(SAMPLE_STARTS, 4.0) == SAMPLE_STARTS / 4.0


async def get_json(stack: Stack, prediction_id: str) -> dict[str, object]:
    response = await stack.get(prediction_id)
    assert response.status == 200
    body: dict[str, object] = await response.json()
    return body


async def test_queue_position_falls_as_the_queue_drains(stack: Stack) -> None:
    ids = []
    for _ in range(12):
        created = await stack.create({"model": SPIN, "input": {"milliseconds": 400}})
        assert created.status == 201
        ids.append((await created.json())["id"])
    last = ids[-1]
    first = await get_json(stack, last)
    assert first["status"] == "pending" and isinstance(first["queue_position"], int)
    while True:
        later = await get_json(stack, last)
        if later["status"] != "pending" or later["queue_position"] < first["queue_position"]:  # type: ignore[operator]
            break
        await asyncio.sleep(0.2)
    assert later["status"] == "pending", "the last of 12 runs of 400 ms is still queued"
    assert later["queue_position"] < first["queue_position"]  # type: ignore[operator]
    assert later["estimated_start_at"] is not None, "runs started: the throughput is known"
    done = await stack.http.get(f"{stack.base_url}/v1/predictions/{last}",
                                headers={**stack.auth(), "Prefer": "wait=30"})
    finished = await done.json()
    assert finished["status"] == "succeeded"
    assert finished["queue_position"] is None and finished["estimated_start_at"] is None


async def test_queues_and_the_stream_say_where_pending_predictions_stand(idle_stack: Stack) -> None:
    stack = idle_stack
    ids = []
    for priority in ("batch", "default", "interactive"):
        created = await stack.create({"model": SPIN, "input": {"milliseconds": 5},
                                      "priority": priority})
        ids.append((await created.json())["id"])
    batch, _, interactive = ids
    async with stack.http.get(f"{stack.base_url}/v1/queues", headers=stack.auth()) as response:
        queues = {q["model"]: q for q in (await response.json())["results"]}
    assert queues[SPIN]["pending"] == 3
    assert [(d["priority"], d["pending"], d["started"]) for d in queues[SPIN]["priorities"]] == [
        ("interactive", 1, 0), ("default", 1, 0), ("batch", 1, 0)]
    assert (await get_json(stack, interactive))["queue_position"] == 1
    shown = await get_json(stack, batch)
    assert shown["queue_position"] == 3 and shown["priority"] == "batch"
    assert shown["estimated_start_at"] is None, "nothing ran: no throughput observed"
    async with stack.http.get(f"{stack.base_url}/v1/predictions/{batch}/stream?queue=true",
                              headers=stack.auth()) as response:
        assert response.status == 200
        text = ""
        while "event: queue" not in text or not text.endswith("\n\n"):
            text += (await response.content.readany()).decode()
    message = text[text.index("event: queue"):].split("\n")
    assert json.loads(message[1].removeprefix("data: ")) == {
        "queue_position": 3, "estimated_start_at": None}

"""The account event feed (`GET /v1/events`) through the real stack, and its order in Postgres."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from inferhook.db import create_engine
from inferhook.settings import Settings
from ingest.state import CHANGES
from schemas.events import event_id
from schemas.feed import Cursor
from store import feed, predictions
from tests.support import Receiver, Stack, example_input, query

DIGITS, SPIN = "inferhook/digits", "inferhook/spin"
SUCCEEDED, CANCELED = "inferhook.prediction.succeeded", "inferhook.prediction.canceled"
CREATED = "inferhook.prediction.created"


def body(stack: Stack, model: str = DIGITS, **extra: Any) -> dict[str, Any]:
    return {"model": model, "input": example_input(stack.settings, model), **extra}


async def read_feed(stack: Stack, *, key: str | None = None, prefer: str | None = None,
                    **params: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = stack.auth(key) | ({"Prefer": prefer} if prefer else {})
    async with stack.http.get(f"{stack.base_url}/v1/events", headers=headers,
                              params={k: str(v) for k, v in params.items()}) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


async def whole_feed(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    status, page, _ = await read_feed(stack, limit=500, **params)
    assert status == 200 and not page["has_more"]
    results: list[dict[str, Any]] = page["results"]
    return results


async def feed_has(stack: Stack, count: int, event_type: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The whole feed once it holds `count` events of `event_type`."""
    deadline = time.monotonic() + timeout
    while True:
        events = await whole_feed(stack)
        if sum(e["type"] == event_type for e in events) >= count:
            return events
        assert time.monotonic() < deadline, f"{count} {event_type} events not in the feed"
        await asyncio.sleep(0.05)


async def until(condition: Any, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition still false after {timeout}s")


async def kafka_ids(settings: Settings, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], set[str]]:
    """The `ce_id`s on the events topic of each (prediction, sequence) in `wanted`."""
    consumer = AIOKafkaConsumer(f"{settings.kafka.topic_prefix}.events",
                                bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    found: dict[tuple[str, int], set[str]] = {}
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not wanted <= set(found) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    attrs = {name: value.decode() for name, value in record.headers}
                    key = (attrs["ce_subject"], int(attrs["ce_sequence"]))
                    found.setdefault(key, set()).add(attrs["ce_id"])
    finally:
        await consumer.stop()
    return found


async def test_feed_ids_are_the_webhook_ids_and_the_kafka_ce_ids(stack: Stack,
                                                                 receiver: Receiver) -> None:
    created = await (await stack.create(body(stack, webhook=receiver.url,
                                             webhook_events_filter=["start", "completed"]))).json()
    pid = created["id"]
    hooks = await receiver.wait_for(3)
    events = await feed_has(stack, 1, SUCCEEDED)
    assert [e["type"].rsplit(".", 1)[1] for e in events] == ["created", "started", "succeeded"]
    assert {e["prediction_id"] for e in events} == {pid} and {e["model"] for e in events} == {DIGITS}
    by_type = {e["type"]: e for e in events}
    assert [h.headers["webhook-id"] for h in hooks] == [  # `start` at create time, then at start
        by_type["inferhook.prediction.created"]["id"], by_type["inferhook.prediction.started"]["id"],
        by_type[SUCCEEDED]["id"]]
    assert by_type[SUCCEEDED]["data"]["output"]["digit"] == 7
    async with stack.http.get(f"{stack.base_url}/v1/predictions/{pid}/events",
                              headers=stack.auth()) as response:
        history = (await response.json())["results"]
    assert [h["id"] for h in history] == [e["id"] for e in events]
    on_kafka = await kafka_ids(stack.settings, {(pid, e["sequence"]) for e in events})
    for event in events:
        assert event["id"] == event_id(pid, event["sequence"])
        assert on_kafka[(pid, event["sequence"])] == {event["id"]}


async def test_cursor_pages_in_order_without_gaps_or_duplicates(stack: Stack) -> None:
    for n in range(6):
        assert (await stack.create(body(stack, SPIN if n % 2 else DIGITS))).status == 201
    everything = await feed_has(stack, 6, SUCCEEDED)
    paged: list[dict[str, Any]] = []
    after: dict[str, Any] = {}
    while True:
        status, page, _ = await read_feed(stack, limit=2, **after)
        assert status == 200 and len(page["results"]) <= 2
        paged += page["results"]
        after = {"after": page["next"]}
        if not page["has_more"]:
            break
    assert paged == everything
    assert len({e["id"] for e in paged}) == len(paged)
    recorded = await query(stack.settings, "SELECT prediction_id, sequence FROM prediction_events")
    assert sorted((e["prediction_id"], e["sequence"]) for e in paged) == sorted(
        (r["prediction_id"], r["sequence"]) for r in recorded)
    for pid in {e["prediction_id"] for e in paged}:
        sequences = [e["sequence"] for e in paged if e["prediction_id"] == pid]
        assert sequences == sorted(sequences)
    # The last cursor goes on from there: only what happened afterwards.
    created = await (await stack.create(body(stack))).json()
    await feed_has(stack, 7, SUCCEEDED)
    status, page, _ = await read_feed(stack, **after)
    assert status == 200 and {e["prediction_id"] for e in page["results"]} == {created["id"]}


async def test_filters_by_type_and_model(stack: Stack) -> None:
    await stack.create(body(stack, DIGITS))
    spin = await (await stack.create(body(stack, SPIN))).json()
    everything = await feed_has(stack, 2, SUCCEEDED)
    succeeded = await whole_feed(stack, types=SUCCEEDED)
    assert [e["id"] for e in succeeded] == [e["id"] for e in everything if e["type"] == SUCCEEDED]
    spins = await whole_feed(stack, models=SPIN)
    assert spins and [e["id"] for e in spins] == [e["id"] for e in everything
                                                  if e["prediction_id"] == spin["id"]]
    two = {"inferhook.prediction.created", SUCCEEDED}
    both = await whole_feed(stack, models=f"{SPIN},{DIGITS}", types=",".join(sorted(two)))
    assert [e["id"] for e in both] == [e["id"] for e in everything if e["type"] in two]
    assert await whole_feed(stack, models="inferhook/minilm") == []


async def test_long_poll_wakes_on_a_new_event(idle_stack: Stack) -> None:
    stack = idle_stack
    assert stack.app is not None
    changes = stack.app[CHANGES]
    status, empty, _ = await read_feed(stack)
    assert status == 200 and empty["results"] == []
    # Waiting for cancellations only: the `created` event does not answer it.
    held = asyncio.create_task(read_feed(stack, prefer="wait=30", after=empty["next"], types=CANCELED))
    await until(lambda: changes.count() == 1)
    created = await (await stack.create(body(stack))).json()
    await feed_has(stack, 1, "inferhook.prediction.created")
    assert not held.done() and changes.count() == 1
    async with stack.http.post(created["urls"]["cancel"], headers=stack.auth()) as canceled:
        assert canceled.status == 200
    status, page, headers = await held
    assert status == 200 and headers["Preference-Applied"] == "wait=30"
    assert [(e["type"], e["prediction_id"]) for e in page["results"]] == [(CANCELED, created["id"])]
    await until(lambda: changes.count() == 0)
    # An empty page held to the end of its wait still answers, with the same cursor.
    status, page, headers = await read_feed(stack, prefer="wait=1", after=page["next"])
    assert status == 200 and page["results"] == [] and headers["Preference-Applied"] == "wait=1"


async def test_another_owner_sees_none_of_it(stack: Stack) -> None:
    await stack.create(body(stack))
    alices = await feed_has(stack, 1, SUCCEEDED)
    bob = await stack.new_key("bob")
    status, page, _ = await read_feed(stack, key=bob)
    assert status == 200 and page["results"] == []
    # Bob reading from the start, filtered to the model alice used: still nothing of hers.
    status, page, headers = await read_feed(stack, key=bob, prefer="wait=1",
                                            after=Cursor().encode(), models=DIGITS)
    assert status == 200 and page["results"] == [] and headers["Preference-Applied"] == "wait=1"
    await stack.create(body(stack, SPIN), key=bob)
    deadline = time.monotonic() + 30
    while True:
        status, page, _ = await read_feed(stack, key=bob)
        if any(e["type"] == SUCCEEDED for e in page["results"]):
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert {e["model"] for e in page["results"]} == {SPIN}
    assert not {e["id"] for e in page["results"]} & {e["id"] for e in alices}
    assert await whole_feed(stack) == alices


@pytest.mark.usefixtures("clean_db")
async def test_a_cursor_outlives_the_services(settings: Settings) -> None:
    async with Stack.running(settings, executor=False) as first:
        before = await (await first.create(body(first))).json()
        cursor = (await feed_has(first, 1, CREATED))[-1]
        _, page, _ = await read_feed(first)
    assert cursor["prediction_id"] == before["id"]
    async with Stack.running(settings, executor=False) as second:  # ingest and dispatcher anew
        after = await (await second.create(body(second))).json()
        await feed_has(second, 2, CREATED)
        status, rest, _ = await read_feed(second, after=page["next"])
    assert status == 200
    assert [(e["type"], e["prediction_id"]) for e in rest["results"]] == [(CREATED, after["id"])]


@pytest.mark.parametrize("params", [
    {"after": "not-a-cursor"}, {"after": "WzEsMiwzXQ"}, {"after": "Wy0xLDJd"}, {"limit": 0},
    {"limit": 501}, {"limit": "many"}, {"types": "inferhook.prediction.exploded"},
    {"models": "Not A Model"}, {"since": "yesterday"}])
async def test_bad_queries_are_400_problems(idle_stack: Stack, params: dict[str, Any]) -> None:
    status, problem, headers = await read_feed(idle_stack, **params)
    assert status == 400, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 400 and problem["errors"][0]["loc"][0] == "query"


# --- the order in Postgres, with transactions overlapping -----------------------------------

class Entry:
    """One history row as the projector would record it."""

    def __init__(self, prediction_id: str, sequence: int) -> None:
        self.prediction_id, self.sequence = prediction_id, sequence
        self.type, self.time, self.data = "inferhook.prediction.created", datetime.now(UTC), b"{}"
        self.owner, self.model = "carol", DIGITS


async def record(conn: AsyncConnection, entry: Entry) -> None:
    """Record one history row as the projector's write does (nothing else changes)."""
    await predictions.apply(conn, new=[], existing=[], history=[entry], notifications=[],
                            offsets={})


@pytest.mark.usefixtures("clean_db")
async def test_a_later_commit_never_lands_behind_a_cursor(settings: Settings) -> None:
    """A's transaction takes its position first and commits last: a reader that saw B's
    event must still get A's after its cursor (ordering by position alone would skip it)."""
    engine = create_engine(settings.database)
    try:
        async with engine.connect() as reader, engine.connect() as a, engine.connect() as b:
            await reader.execute(text("SELECT 1"))
            await reader.commit()

            async def page(after: Cursor) -> list[feed.FeedRow]:
                rows = await feed.page(reader, "carol", after, types=[], models=[], limit=10)
                await reader.commit()
                return rows

            async with a.begin():
                await record(a, Entry("a", 0))
                async with b.begin():
                    await record(b, Entry("b", 0))
                assert await page(Cursor()) == []  # B is committed, but A is older and running
                assert await feed.held_back(reader, "carol", Cursor(), types=[], models=[])
                await reader.commit()
            first = await page(Cursor())
            async with b.begin():
                await record(b, Entry("c", 0))
            after_first = await page(first[-1].cursor)
    finally:
        await engine.dispose()
    assert [r.prediction_id for r in first] == ["a", "b"]
    assert [r.prediction_id for r in after_first] == ["c"]

"""The `start` webhook at create time: a pending prediction whose filter has `start` gets
one right away, carrying its queue place as GET computes it (and another when it starts).
The rule without servers, the batch's set-based query against GET, and the webhook through
the real stack, verified with standardwebhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

from dispatcher.fold import Current, fold
from dispatcher.outbox import EVENT_HEADER
from dispatcher.queueplace import Place, places
from inferhook.db import create_engine
from schemas.events import (
    CREATED_SEQUENCE,
    RUNNING_SEQUENCE,
    Created,
    EventType,
    PredictionEvent,
    Started,
    utcnow,
)
from schemas.webhooks import webhook_id
from store import predictions
from store.accounts import webhook_secret
from store.predictions import QueuedGroup
from tests.support import EventWriter, Receiver, Stack, query, wait_until

SPIN = "inferhook/spin"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = "http://api.test"


def created(events: list[str], webhook: str | None = "http://hooks.test/h") -> PredictionEvent:
    return PredictionEvent(id="p1-0", source="test", type=EventType.CREATED, time=T0,
                           subject="p1", sequence=CREATED_SEQUENCE, data=Created(
                               owner="alice", model=SPIN, input={}, webhook=webhook,
                               webhook_events_filter=events, created_at=T0))


def row(status: str) -> Current:
    """The row ingest wrote at create time (or the projector, later)."""
    return Current(id="p1", owner="alice", model=SPIN, status=status,
                   webhook="http://hooks.test/h", webhook_events_filter=["start", "completed"],
                   created_at=T0, last_sequence=CREATED_SEQUENCE if status == "pending" else 2)


# --- the rule, without servers -----------------------------------------------------------------

def test_created_calls_for_start_only_when_the_filter_has_it_and_it_is_pending() -> None:
    folded = fold({}, [created(["start", "completed"])], BASE)
    (intent,) = folded.intents
    assert (intent.event_type, intent.sequence) == (EventType.CREATED, CREATED_SEQUENCE)
    assert intent.webhook_id == webhook_id("p1", CREATED_SEQUENCE)
    assert b'"status":"pending"' in intent.body
    assert fold({}, [created(["completed"])], BASE).intents == []
    assert fold({}, [created(["start"], webhook=None)], BASE).intents == []
    # ingest wrote the row first (read-your-writes): the projector still sends it.
    assert len(fold({"p1": row("pending")}, [created(["start"])], BASE).intents) == 1
    # a `created` replayed after the start calls for nothing.
    assert fold({"p1": row("started")}, [created(["start"])], BASE).intents == []


def group(priority: str, owner: str, n: int, targets: list[str] | None = None,
          earlier: list[int] | None = None, started: int = 0,
          span: float | None = None) -> QueuedGroup:
    return QueuedGroup(model=SPIN, priority=priority, owner=owner, n=n, targets=targets,
                       earlier=earlier, started=started, span=span)


def test_places_apply_the_get_rule_to_each_target() -> None:
    now = T0
    groups = [group("interactive", "c", 2, started=30), group("default", "a", 500, started=30),
              group("default", "b", 10, ["b4", "b1"], [3, 0], started=30),
              group("batch", "a", 50, ["a50"], [49], started=30)]
    found = places(groups, now)
    # as in test_queue_position: b's 4th stands 10th; b's 1st after 2 interactive and a's 1st
    assert found["b4"].queue_position == 10 and found["b1"].queue_position == 4
    assert found["a50"].queue_position == 2 + 510 + 49 + 1
    assert found["b4"].estimated_start_at == now + timedelta(seconds=10 / 0.5)  # 30 a minute
    assert places([group("default", "a", 1, ["x"], [0])], now) == {"x": Place(1, None)}


# --- the batch's query against GET -------------------------------------------------------------

async def create(stack: Stack, priority: str, key: str | None = None,
                 **extra: Any) -> str:
    response = await stack.create({"model": SPIN, "input": {"milliseconds": 5},
                                   "priority": priority, **extra}, key=key)
    assert response.status == 201, await response.text()
    prediction_id: str = (await response.json())["id"]
    return prediction_id


async def test_the_batch_query_places_predictions_as_get_does(idle_stack: Stack) -> None:
    stack = idle_stack
    bob = await stack.new_key("bob")
    made = [(priority, key) for priority, key in (
        ("default", None), ("batch", None), ("default", bob), ("interactive", None),
        ("default", None), ("default", bob), ("batch", bob), ("default", None))]
    keys = {await create(stack, priority, key): key for priority, key in made}
    shown: dict[str, int] = {}
    for prediction_id, key in keys.items():  # once all are queued
        got = await (await stack.get(prediction_id, key=key)).json()
        shown[prediction_id] = got["queue_position"]
    ids = list(shown)
    interactive = ids[3]
    rows = await query(stack.settings, "SELECT id, model, priority, owner, created_at "
                                       "FROM predictions WHERE id = :p", p=interactive)
    engine = create_engine(stack.settings.database)
    try:
        async with engine.connect() as conn:
            as_is = places(await predictions.queue_places(conn, [SPIN], ids, [], 60.0), utcnow())
            # The batch started the interactive one: everything else moves up by one.
            started = places(await predictions.queue_places(
                conn, [SPIN], ids, [{**rows[0], "pending": False}], 60.0), utcnow())
    finally:
        await engine.dispose()
    assert {pid: place.queue_position for pid, place in as_is.items()} == shown
    assert shown[interactive] == 1 and max(shown.values()) == 8
    assert {pid: place.queue_position for pid, place in started.items()} == {
        pid: place - 1 for pid, place in shown.items() if pid != interactive}


# --- the webhook, through the real stack -------------------------------------------------------

async def test_a_pending_prediction_behind_a_backlog_gets_start_with_its_place(
        idle_stack: Stack, receiver: Receiver) -> None:
    stack = idle_stack
    backlog = [await create(stack, "default", webhook=receiver.url,
                            webhook_events_filter=["completed"]) for _ in range(3)]
    pid = await create(stack, "default", webhook=receiver.url,
                       webhook_events_filter=["start", "completed"])
    (hook,) = await receiver.wait_for(1)
    engine = create_engine(stack.settings.database)
    try:
        secret = await webhook_secret(engine, "alice")
    finally:
        await engine.dispose()
    body = Webhook(secret).verify(hook.body, hook.headers)
    assert (body["id"], body["status"]) == (pid, "pending")
    assert hook.headers["webhook-id"] == webhook_id(pid, CREATED_SEQUENCE)
    assert hook.headers[EVENT_HEADER] == EventType.CREATED.value  # the event it reports
    assert body["queue_position"] == 4 and body["queue_position"] >= 1
    assert body["estimated_start_at"] is None, "nothing started: no throughput observed"
    assert (await (await stack.get(pid)).json())["queue_position"] == body["queue_position"]

    async def backlog_projected() -> bool:
        found = await query(stack.settings, "SELECT count(*) AS n FROM prediction_events "
                                            "WHERE prediction_id = ANY(:ids)", ids=backlog)
        return bool(found[0]["n"] == len(backlog))

    await wait_until(backlog_projected, what="the backlog's created projected")
    assert await query(stack.settings, "SELECT id FROM webhook_deliveries "
                                       "WHERE prediction_id = ANY(:ids)", ids=backlog) == []

    # The `start` webhook of the run itself still comes, under its own webhook-id.
    async with EventWriter(stack.settings) as events:
        await events.send(pid, RUNNING_SEQUENCE, Started(started_at=utcnow()))
    _, second = await receiver.wait_for(2)
    started = Webhook(secret).verify(second.body, second.headers)
    assert started["status"] == "started"
    assert started["queue_position"] is None
    assert second.headers["webhook-id"] == webhook_id(pid, RUNNING_SEQUENCE)


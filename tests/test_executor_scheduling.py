"""Scheduling in a real executor over real Kafka: priorities drained by weight, owners served
in turns, and held requests given back (never lost) when an executor stops.

Orderings only: which runs started before which (the `started` events' times), never how
long anything took.
"""

from __future__ import annotations

from datetime import datetime

from executors.worker import Executor, load_models
from inferhook.settings import Settings
from schemas.events import EventType, Started
from schemas.priority import Priority
from tests.executor_kit import EventLog, Requests, running

SPIN = "inferhook/spin"


def started_at(events: EventLog, prediction_id: str) -> datetime | None:
    """When the prediction's run began (its `started` event, phase running)."""
    for event in events.of(prediction_id):
        if event.type is EventType.STARTED and isinstance(event.data, Started) \
                and event.data.phase == "running":
            return event.data.started_at
    return None


def start_order(events: EventLog, ids: list[str]) -> list[str]:
    """The predictions among `ids` that started, in the order they started."""
    times = {i: t for i in ids if (t := started_at(events, i)) is not None}
    return sorted(times, key=lambda i: times[i])


def spin_executor(settings: Settings) -> Executor:
    return Executor.dedicated(settings, load_models(settings, [SPIN]))


async def test_interactive_overtakes_a_batch_backlog(settings: Settings) -> None:
    async with Requests.open(settings, [SPIN]) as requests, EventLog.follow(settings) as events:
        backlog = [await requests.create(SPIN, {"milliseconds": 200}, priority=Priority.BATCH)
                   for _ in range(20)]
        async with running(spin_executor(settings)):
            await events.wait_until(lambda: len(start_order(events, backlog)) >= 3)
            seen = set(start_order(events, backlog))
            urgent = await requests.create(SPIN, {"milliseconds": 1}, priority=Priority.INTERACTIVE)
            assert (await events.outcome(urgent)).type is EventType.SUCCEEDED
            for prediction_id in backlog:
                assert (await events.outcome(prediction_id)).type is EventType.SUCCEEDED
    order = start_order(events, [*backlog, urgent])
    ahead = order[:order.index(urgent)]
    # The batch run in progress when it came (and at most one whose start we had not yet
    # read back) ran first; FIFO would have put all 20 ahead of it.
    assert len(set(ahead) - seen) <= 2, (len(ahead), len(seen))
    assert len(order) - len(ahead) > 10


async def test_a_second_owner_is_not_starved_by_a_first_owners_flood(settings: Settings) -> None:
    async with Requests.open(settings, [SPIN]) as requests, EventLog.follow(settings) as events:
        flood = [await requests.create(SPIN, {"milliseconds": 10}, owner="a") for _ in range(150)]
        late = [await requests.create(SPIN, {"milliseconds": 10}, owner="b") for _ in range(10)]
        async with running(spin_executor(settings)):
            for prediction_id in [*flood, *late]:
                assert (await events.outcome(prediction_id)).type is EventType.SUCCEEDED
    order = start_order(events, [*flood, *late])
    positions = sorted(order.index(i) for i in late)
    # Owners take turns over what the executor holds: b's runs interleave with a's instead
    # of waiting behind all 150 (FIFO: positions 150…159).
    assert positions[-1] < 40, positions
    assert sum(1 for i in order[:positions[-1]] if i in flood) <= positions[-1] // 2 + 10


async def test_held_requests_go_back_to_the_group_when_an_executor_stops(settings: Settings) -> None:
    async with Requests.open(settings, [SPIN]) as requests, EventLog.follow(settings) as events:
        ids = [await requests.create(SPIN, {"milliseconds": 50},
                                     priority=(Priority.BATCH, Priority.DEFAULT)[i % 2])
               for i in range(40)]
        async with running(spin_executor(settings)) as first:
            await events.wait_until(lambda: len(start_order(events, ids)) >= 3)
        ran_first = {i for i in ids if events.of(i)}
        async with running(spin_executor(settings)) as second:
            for prediction_id in ids:
                assert (await events.outcome(prediction_id)).type is EventType.SUCCEEDED
    # The first executor held every request but started only some: the others ran on the
    # second, and none ran on both unless its offset was not yet committed.
    assert 3 <= len(ran_first) < len(ids)
    sources = {events.terminal(i)[0].source for i in ids}
    assert sources == {first.source, second.source}
    assert all(events.terminal(i)[0].source == second.source for i in ids if i not in ran_first)

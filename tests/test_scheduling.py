"""executors.scheduling without servers: priorities by weight, owners in turns."""

from __future__ import annotations

import itertools
import random

from executors.scheduling import ModelQueue, OwnerQueue, Scheduler, Weights
from schemas.priority import Priority


def drain(queue: ModelQueue[str]) -> list[str]:
    taken: list[str] = []
    while (item := queue.pop()) is not None:
        taken.append(item)
    return taken


def test_owners_take_turns_each_in_arrival_order() -> None:
    queue: OwnerQueue[str] = OwnerQueue()
    for i in range(5):
        queue.push("a", f"a{i}")
    for i in range(2):
        queue.push("b", f"b{i}")
    queue.push("c", "c0")
    taken = [queue.pop() for _ in range(len(queue))]
    assert taken == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
    assert len(queue) == 0


def test_a_late_owner_is_served_within_one_round_of_a_flood() -> None:
    queue: ModelQueue[str] = ModelQueue()
    for i in range(500):
        queue.push(Priority.DEFAULT, "a", f"a{i}")
    first = [queue.pop() for _ in range(3)]
    for i in range(10):
        queue.push(Priority.DEFAULT, "b", f"b{i}")
    rest = drain(queue)
    b_positions = [rest.index(f"b{i}") for i in range(10)]
    assert first == ["a0", "a1", "a2"]
    assert b_positions == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]  # FIFO would put them at 497…
    assert [x for x in rest if x.startswith("a")] == [f"a{i}" for i in range(3, 500)]


def test_interactive_is_taken_next_whatever_the_backlog() -> None:
    rng = random.Random(14)
    for _ in range(200):
        queue: ModelQueue[str] = ModelQueue()
        for i in range(rng.randrange(1, 40)):
            queue.push(rng.choice([Priority.DEFAULT, Priority.BATCH]), "a", f"x{i}")
        for _ in range(rng.randrange(0, 30)):  # any state the other two's credit can be in
            queue.pop()
        queue.push(Priority.INTERACTIVE, "b", "now")
        assert queue.pop() == "now"


def test_weights_share_the_takes_while_all_three_hold_work() -> None:
    queue: ModelQueue[Priority] = ModelQueue()
    for priority, _ in itertools.product(Priority, range(100)):
        queue.push(priority, "a", priority)
    taken = [queue.pop() for _ in range(21)]
    assert [taken.count(p) for p in Priority] == [16, 4, 1]


def test_batch_is_slowed_never_starved() -> None:
    queue: ModelQueue[str] = ModelQueue()
    queue.push(Priority.BATCH, "a", "batch")
    for i in range(100):
        queue.push(Priority.DEFAULT, "a", f"d{i}")
    taken = drain(queue)
    assert taken.index("batch") <= Weights().default + 1


def test_an_idle_priority_banks_no_debt() -> None:
    queue: ModelQueue[str] = ModelQueue()
    for i in range(10):
        queue.push(Priority.INTERACTIVE, "a", f"i{i}")
    for i in range(100):
        queue.push(Priority.DEFAULT, "a", f"d{i}")
    taken = [queue.pop() for _ in range(12)]  # interactive runs empty owing credit
    assert [x for x in taken if x and x.startswith("i")] == [f"i{i}" for i in range(10)]
    queue.push(Priority.INTERACTIVE, "b", "late")
    assert queue.pop() == "late"


def test_a_trickle_of_interactive_work_leaves_the_others_their_share() -> None:
    queue: ModelQueue[str] = ModelQueue()
    for i in range(1000):
        queue.push(Priority.DEFAULT, "a", f"d{i}")
    taken: list[str] = []
    waits: list[int] = []
    for i in range(200):  # an interactive request arrives after every take
        queue.push(Priority.INTERACTIVE, "b", f"i{i}")
        waits.append(0)
        while (item := queue.pop()) is not None and item != f"i{i}":
            taken.append(item)
            waits[-1] += 1
        taken.append(f"i{i}")
    assert max(waits) == 1  # never more than one take ahead of an interactive request
    share = sum(1 for x in taken if x.startswith("d")) / len(taken)
    assert abs(share - 4 / 20) < 0.02


def test_remove_drops_what_is_selected_and_keeps_the_order_of_the_rest() -> None:
    scheduler: Scheduler[tuple[int, str]] = Scheduler()
    for i in range(6):
        scheduler.push("m", Priority.DEFAULT, "a" if i % 2 else "b", (i % 3, f"r{i}"))
    dropped = scheduler.remove(lambda item: item[0] == 0)
    assert sorted(name for _, name in dropped) == ["r0", "r3"]
    assert scheduler.waiting("m") == 4
    taken = [scheduler.pop("m") for _ in range(4)]
    assert [item[1] for item in taken if item] == ["r2", "r1", "r4", "r5"]
    assert scheduler.pop("m") is None and scheduler.models == []

"""In which order an executor starts the requests it holds: by priority, then fairly by owner.

The consumer keeps a bounded prefetch of each model's request records here and takes one
out whenever the model's batcher has room (executors.consumer). Two rules, both pure:

- **Between priorities** (`Weights`): smooth weighted round robin (nginx's): on each take,
  every priority that holds records gains its weight in credit, the one with the most
  credit is taken and pays the sum of the weights in play. A priority's credit is cleared
  when it runs empty, so none banks debt (or credit) while idle. With the default weights
  (16, 4, 1), an `interactive` record is the next one taken whatever backlog the other two
  hold; only while interactive work keeps arriving do the other two get their share (4/21
  and 1/21 of the takes), an interactive record then waiting at most one take for it.
- **Between owners, inside one priority**: deficit round robin with a quantum of one record
  and every record costing one, i.e. owners take turns, one record each, each owner's
  records in arrival order. An owner with 500 records queued and one with 10 alternate, so
  the second's records start within its first 20 takes instead of after the 500.

No I/O, no clock: the consumer decides when to take, this decides what.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.priority import Priority

T = TypeVar("T")


@dataclass(frozen=True)
class Weights:
    """Share of the takes each priority gets while all three hold records."""

    interactive: int = 16
    """Above the sum of the other two, so an interactive record is taken next (see above)."""
    default: int = 4
    """What a create without a priority gets."""
    batch: int = 1
    """Never zero: batch work is slowed, never starved."""

    def of(self, priority: Priority) -> int:
        """The weight of one priority."""
        return {Priority.INTERACTIVE: self.interactive, Priority.DEFAULT: self.default,
                Priority.BATCH: self.batch}[priority]


class OwnerQueue(Generic[T]):
    """One priority's records, a FIFO per owner, taken in turns over owners."""

    def __init__(self) -> None:
        self._by_owner: dict[str, deque[T]] = {}
        self._turns: deque[str] = deque()
        """Owners with records, in the order their turns come."""
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, owner: str, item: T) -> None:
        """Queue an item after the owner's earlier ones; a new owner's turn comes last."""
        queue = self._by_owner.get(owner)
        if queue is None:
            queue = self._by_owner[owner] = deque()
            self._turns.append(owner)
        queue.append(item)
        self._size += 1

    def pop(self) -> T:
        """The oldest item of the owner whose turn it is; that owner then goes last."""
        owner = self._turns.popleft()
        queue = self._by_owner[owner]
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._turns.append(owner)
        else:
            del self._by_owner[owner]
        return item

    def remove(self, drop: Callable[[T], bool]) -> list[T]:
        """Take out every item `drop` selects (in no particular order); return them."""
        dropped: list[T] = []
        for owner in list(self._turns):
            queue = self._by_owner[owner]
            kept = deque(item for item in queue if not drop(item))
            dropped.extend(item for item in queue if drop(item))
            if kept:
                self._by_owner[owner] = kept
            else:
                del self._by_owner[owner]
                self._turns.remove(owner)
        self._size -= len(dropped)
        return dropped

    def items(self) -> Iterator[T]:
        """Every item, owner by owner (not the order they will be taken in)."""
        for queue in self._by_owner.values():
            yield from queue


@dataclass
class ModelQueue(Generic[T]):
    """One model's records: an `OwnerQueue` per priority, chosen by weight."""

    weights: Weights = field(default_factory=Weights)
    queues: dict[Priority, OwnerQueue[T]] = field(
        default_factory=lambda: {p: OwnerQueue() for p in Priority})
    credit: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def push(self, priority: Priority, owner: str, item: T) -> None:
        """Queue an item of `owner` at `priority`."""
        self.queues[priority].push(owner, item)

    def pop(self) -> T | None:
        """The next item by the rules above; None when empty."""
        ready = [p for p in Priority if self.queues[p]]
        if not ready:
            return None
        total = 0
        for priority in ready:
            self.credit[priority] += self.weights.of(priority)
            total += self.weights.of(priority)
        chosen = max(ready, key=lambda p: self.credit[p])  # ties: the more urgent (enum order)
        self.credit[chosen] -= total
        item = self.queues[chosen].pop()
        if not self.queues[chosen]:
            self.credit[chosen] = 0
        return item

    def remove(self, drop: Callable[[T], bool]) -> list[T]:
        """Take out every item `drop` selects; return them."""
        dropped: list[T] = []
        for priority, queue in self.queues.items():
            dropped.extend(queue.remove(drop))
            if not queue:
                self.credit[priority] = 0
        return dropped


class Scheduler(Generic[T]):
    """The records an executor holds and has not started, per model."""

    def __init__(self, weights: Weights | None = None) -> None:
        self.weights = weights or Weights()
        self._models: dict[str, ModelQueue[T]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._models.values())

    def waiting(self, model: str) -> int:
        """Items of `model` not yet taken."""
        queue = self._models.get(model)
        return len(queue) if queue is not None else 0

    def push(self, model: str, priority: Priority, owner: str, item: T) -> None:
        """Hold an item until `pop(model)` takes it."""
        queue = self._models.get(model)
        if queue is None:
            queue = self._models[model] = ModelQueue(self.weights)
        queue.push(priority, owner, item)

    def pop(self, model: str) -> T | None:
        """The item of `model` to start next; None when it has none."""
        queue = self._models.get(model)
        return queue.pop() if queue is not None else None

    def remove(self, drop: Callable[[T], bool]) -> list[T]:
        """Take out every item `drop` selects, of every model; return them."""
        return [item for queue in self._models.values() for item in queue.remove(drop)]

    @property
    def models(self) -> list[str]:
        """Models holding items now."""
        return [model for model, queue in self._models.items() if queue]

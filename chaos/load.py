"""Open-loop load: creates at a fixed arrival rate, each retried until it is accepted.

Create i is due at start + i / rate whatever happened to earlier ones. Each has its own
`Idempotency-Key`, so a create retried after a connection error, a 5xx (503 while Kafka or
PostgreSQL is down) or a 409 (its twin still in flight) can only ever make one prediction.
Every id answered 201 (or 200, the replay of an earlier 201 whose answer was lost) goes into
the ledger.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.api import CONNECTION_ERROR, Api

TIMELINE_STEP = 5
"""Seconds per bucket of the answers' timeline in the report."""
RETRYABLE = frozenset({CONNECTION_ERROR, 409, 429, 500, 502, 503, 504})
"""Answers after which the same create is sent again."""


@dataclass
class Create:
    """One prediction the load asked for (times on the run's clock)."""

    index: int
    model: str
    idempotency_key: str
    due: float
    probe_for: str | None = None
    """Set on a fault's recovery probe: which fault."""
    prediction_id: str | None = None
    accepted_status: int | None = None
    accepted_at: float | None = None
    attempts: int = 0
    last_answer: str = ""
    refused_503: int = 0


@dataclass
class Load:
    """Sends creates and keeps every answer's count."""

    api: Api
    bodies: dict[str, dict[str, Any]]
    """Create body per model (input, webhook and filter included)."""
    clock: Callable[[], float]
    run_name: str
    give_up: float
    creates: list[Create] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    """Every answer to every create attempt: HTTP status, or the error's name when none came."""
    timeline: dict[int, Counter[str]] = field(default_factory=dict)
    """The same per TIMELINE_STEP seconds of the run's clock (bucket start → answers)."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def new(self, model: str, *, probe_for: str | None = None) -> Create:
        index = len(self.creates)
        create = Create(index=index, model=model, idempotency_key=f"{self.run_name}-{index}",
                        due=self.clock(), probe_for=probe_for)
        self.creates.append(create)
        return create

    async def send(self, create: Create) -> None:
        """POST until accepted, refused for good (4xx) or `give_up` seconds after it was due."""
        delay = 0.25
        while True:
            answer = await self.api.create(self.bodies[create.model], create.idempotency_key)
            create.attempts += 1
            create.last_answer = str(answer.status) if answer.status else answer.error
            self.answers[create.last_answer] += 1
            create.refused_503 += answer.status == 503
            bucket = int(self.clock() // TIMELINE_STEP) * TIMELINE_STEP
            self.timeline.setdefault(bucket, Counter())[create.last_answer] += 1
            if answer.status in (200, 201) and isinstance(answer.body, dict):
                create.prediction_id = str(answer.body["id"])
                create.accepted_status, create.accepted_at = answer.status, self.clock()
                return
            if answer.status not in RETRYABLE or self.clock() - create.due > self.give_up:
                return
            wait = answer.retry_after if answer.retry_after is not None else delay
            await asyncio.sleep(min(max(wait, 0.1), 5.0))
            delay = min(delay * 2, 2.0)

    async def run(self, duration: float, rate: float, models: tuple[str, ...]) -> None:
        """Send `duration * rate` creates at `rate` per second (models in turn), then wait for
        every create still being retried."""
        start = self.clock()
        for i in range(int(duration * rate)):
            delay = start + i / rate - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self.spawn(self.new(models[i % len(models)]))
        await self.settle()

    def spawn(self, create: Create) -> asyncio.Task[None]:
        task = asyncio.create_task(self.send(create))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait for the creates in flight (each bounded by `give_up`)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Stop every create still being sent (the run is ending early)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def accepted(self) -> list[Create]:
        return [c for c in self.creates if c.prediction_id is not None]

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        accepted = self.accepted()
        never = [c for c in self.creates if c.prediction_id is None]
        return {
            "sent": len(self.creates), "accepted": len(accepted),
            "accepted_as_replay_200": sum(1 for c in accepted if c.accepted_status == 200),
            "retried_creates": sum(1 for c in self.creates if c.attempts > 1),
            "never_accepted": len(never),
            # 409 last means a twin of it got as far as the idempotency key's reservation: it may exist
            # server-side without the client ever learning its id (so outside the ledger).
            "never_accepted_by_last_answer": dict(Counter(c.last_answer for c in never)),
            "never_accepted_examples": [{"index": c.index, "last_answer": c.last_answer,
                                         "attempts": c.attempts} for c in never[:20]],
            "answers": dict(self.answers),
            "responses_503": self.answers.get("503", 0),
            "creates_answered_503": sum(1 for c in self.creates if c.refused_503),
            "answers_timeline": [{"t": t, **self.timeline[t]} for t in sorted(self.timeline)],
        }

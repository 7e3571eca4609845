"""Runs lost to infrastructure, counted so that they are retried a bounded number of times.

Where attempts are counted: before an executor runs a request (warm or cold) it writes an
`attempt_started` record (attempt N) to the attempts topic and waits until it is durable.
Every executor reads that topic in full, from `ATTEMPTS_HISTORY_SECONDS` back at its start
(executors.control's listener), so the member that takes over an uncommitted request
after a crash, a SIGKILL or an OOM kill knows how many attempts came before, even when
the lost run wrote nothing else (a crash while the model loaded). A topic of its own, not
the control topic: it gets a record per request, and the control topic is read back an
hour at start (a new executor, e.g. one scaled from zero, would read all of them). Chosen
over the read model (executors do not talk to Postgres, and it lags) and over the events
topic (far larger; no executor reads it). An attempt older than the window is forgotten:
the count starts again, which can only allow more retries, never fail a run early.

A request put back on its topic because its model would not load carries its attempt
count in the `inferhook_attempts` header as well, so the next executor need not wait for
its control listener to have read the record.

The rule itself (`next_attempt`) is a pure function: attempt `previous + 1` while it is at
most `1 + max_retries`, else the retries are spent and the prediction fails
`infrastructure`. Input errors never reach here: they end the run with an outcome.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

ATTEMPTS_HEADER = "inferhook_attempts"
"""On a request put back on its topic: the attempts already made."""
LOST_HEADER = "inferhook_lost"
"""On a request put back on its topic: why the last attempt was lost."""
ATTEMPTS_HISTORY_SECONDS = 900.0
"""How far back an executor reads the attempts topic at start: longer than a lost request
waits for its next executor (session timeout, a replacement's start)."""
ATTEMPTS_KEPT = 100_000
"""How many predictions' attempt counts an executor remembers (oldest forgotten first)."""
CRASHED = "the executor running it stopped (crash, kill or out of memory)"
"""Why an attempt was lost when the next executor finds it unfinished."""


def next_attempt(previous: int, max_retries: int) -> int | None:
    """The number of the attempt to make after `previous` ones, or None when `max_retries`
    retries were spent (at most `1 + max_retries` attempts in all)."""
    attempt = previous + 1
    return attempt if attempt <= 1 + max_retries else None


def attempts_in_headers(headers: Sequence[tuple[str, bytes]]) -> int:
    """The attempt count a re-queued request carries (0 when none, or unreadable)."""
    for name, value in headers:
        if name == ATTEMPTS_HEADER:
            try:
                return max(0, int(value))
            except ValueError:
                return 0
    return 0


def lost_in_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """Why the last attempt of a re-queued request was lost, when it says."""
    for name, value in headers:
        if name == LOST_HEADER:
            return value.decode("utf-8", "replace")
    return None


class Attempts:
    """Attempts started per prediction id, as read from the control topic (bounded)."""

    def __init__(self, limit: int = ATTEMPTS_KEPT) -> None:
        self.limit = limit
        self._counts: OrderedDict[str, int] = OrderedDict()

    def record(self, prediction_id: str, attempt: int) -> None:
        """Attempt `attempt` of the prediction started (counts never go down)."""
        self._counts[prediction_id] = max(attempt, self._counts.get(prediction_id, 0))
        self._counts.move_to_end(prediction_id)
        while len(self._counts) > self.limit:
            self._counts.popitem(last=False)

    def get(self, prediction_id: str) -> int:
        """Attempts started for the prediction (0 when none is known)."""
        return self._counts.get(prediction_id, 0)

    def __len__(self) -> int:
        return len(self._counts)

"""Per-endpoint rate limits: at most `rate` attempts start in any window of one second.

A sliding log of start times per endpoint; a sender asks `delay` and waits, then `take`s
its slot with no await in between, so the limit holds for the times actually taken. The
clock is passed in. The window is per dispatcher process; across dispatchers the slots
Postgres hands out (store.endpoints.take_slot) space starts 1/rate s apart first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 1.0
"""Seconds of the window `rate` counts in."""


@dataclass
class RateWindow:
    """Starts to one endpoint in the last second."""

    rate: int
    starts: deque[float] = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        while self.starts and now - self.starts[0] >= WINDOW:
            self.starts.popleft()

    def delay(self, now: float) -> float:
        """Seconds to wait before one more attempt may start (0: now)."""
        self._trim(now)
        if len(self.starts) < self.rate:
            return 0.0
        return self.starts[-self.rate] + WINDOW - now

    def take(self, now: float) -> None:
        """Count an attempt starting now (call only when `delay` said 0)."""
        self.starts.append(now)

    def room(self, now: float) -> int:
        """Attempts that may still start within the current window."""
        self._trim(now)
        return max(0, self.rate - len(self.starts))

"""Per-endpoint circuit breakers, so one dead receiver costs the others nothing.

An endpoint opens after `failures` consecutive failed attempts (no answer, 5xx, 429) and
stays open for a cooldown that doubles each time it re-opens, up to `max_cooldown`. When
the cooldown ends it is half-open: one trial attempt at a time; a success closes it, a
failure opens it again. The clock is passed in, so the policy is testable without one.
"""

from __future__ import annotations

from dataclasses import dataclass


def counts_as_failure(status: int | None) -> bool:
    """True for outcomes that say the endpoint is down or overloaded (not merely refusing)."""
    return status is None or status == 429 or status >= 500


@dataclass
class Breaker:
    """The circuit state of one endpoint."""

    failures: int = 5
    """Consecutive failures that open the circuit."""
    cooldown: float = 10.0
    """First open period in seconds."""
    max_cooldown: float = 600.0
    """Longest open period in seconds."""
    consecutive: int = 0
    open_until: float = 0.0
    current_cooldown: float = 0.0

    def is_open(self, now: float) -> bool:
        """True while attempts must not be made at all."""
        return now < self.open_until

    def half_open(self, now: float) -> bool:
        """True when the cooldown is over but no success has closed the circuit yet."""
        return self.consecutive >= self.failures and not self.is_open(now)

    def room(self, cap: int, now: float) -> int:
        """How many attempts may be in flight to the endpoint now."""
        if self.is_open(now):
            return 0
        return 1 if self.half_open(now) else cap

    def record(self, *, failed: bool, now: float) -> float | None:
        """Count one outcome; returns the time the circuit is open until when this opened it."""
        if not failed:
            self.consecutive, self.current_cooldown = 0, 0.0
            return None
        self.consecutive += 1
        if self.consecutive < self.failures or self.is_open(now):
            return None
        self.current_cooldown = min(self.max_cooldown,
                                    self.current_cooldown * 2 if self.current_cooldown
                                    else self.cooldown)
        self.open_until = now + self.current_cooldown
        return self.open_until

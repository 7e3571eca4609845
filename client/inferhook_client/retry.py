"""When to try a request again, and how long to wait first: pure functions and one policy."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries GETs, cancels and (with their Idempotency-Key) creates."""

    max_attempts: int = 5
    """Tries in all, the first one included; 1 turns retries off."""
    initial_backoff: float = 0.25
    """Seconds before the second try."""
    factor: float = 2.0
    """Each further wait is this many times the one before."""
    max_backoff: float = 8.0
    """No computed wait is longer than this."""
    max_retry_after: float = 60.0
    """A server's Retry-After is honoured up to this many seconds."""
    jitter: bool = True
    """Full jitter: wait a uniform random time up to the computed backoff."""


def compute_backoff(attempt: int, policy: RetryPolicy, *, retry_after: float | None = None,
                    rand: float | None = None) -> float:
    """Seconds to wait after failed try number `attempt` (1-based).

    A server's Retry-After wins (capped at `max_retry_after`); otherwise capped exponential
    backoff, with full jitter scaled by `rand` in [0, 1) (random when not given).
    """
    if retry_after is not None:
        return max(0.0, min(retry_after, policy.max_retry_after))
    backoff = min(policy.max_backoff, policy.initial_backoff * policy.factor ** (attempt - 1))
    if not policy.jitter:
        return backoff
    return backoff * (random.random() if rand is None else rand)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

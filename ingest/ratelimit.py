"""Per-key rate limits: token buckets kept in memory by each ingest process.

Creates (every POST) and reads (every GET) have separate buckets. Each process limits on
its own, so N replicas allow up to N times the configured rate; put the limit per replica.
Answers carry the IETF draft headers `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds until the bucket is full again); a refusal adds `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from inferhook.settings import ApiSettings

MAX_BUCKETS = 100_000
"""Buckets kept per process; the least recently used go first (a full bucket loses nothing)."""


class Kind(StrEnum):
    """Which bucket a request draws from."""

    CREATE = "create"
    READ = "read"


@dataclass
class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; each request takes one."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Take a token at time `now`; False (and nothing taken) when the bucket is empty."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def retry_after(self) -> int:
        """Whole seconds until the next token (at least 1)."""
        return max(1, math.ceil((1 - self.tokens) / self.rate))

    def reset_after(self) -> int:
        """Whole seconds until the bucket is full again."""
        return math.ceil((self.burst - self.tokens) / self.rate)

    def headers(self) -> dict[str, str]:
        """`RateLimit-*` headers describing this bucket now."""
        return {"RateLimit-Limit": str(self.burst),
                "RateLimit-Remaining": str(max(0, math.floor(self.tokens))),
                "RateLimit-Reset": str(self.reset_after())}


class RateLimiter:
    """Buckets by (API key digest, kind)."""

    def __init__(self, settings: ApiSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {Kind.CREATE: (settings.create_rate, settings.create_burst),
                       Kind.READ: (settings.read_rate, settings.read_burst)}
        self.clock = clock
        self.buckets: OrderedDict[tuple[str, Kind], TokenBucket] = OrderedDict()

    def take(self, key: str, kind: Kind) -> tuple[bool, TokenBucket]:
        """Charge one request to `key`; the verdict and the bucket (for headers)."""
        now = self.clock()
        bucket = self.buckets.get((key, kind))
        if bucket is None:
            rate, burst = self.limits[kind]
            bucket = TokenBucket(rate=rate, burst=burst, tokens=float(burst), updated=now)
            self.buckets[(key, kind)] = bucket
            if len(self.buckets) > MAX_BUCKETS:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end((key, kind))
        return bucket.take(now), bucket

"""Verified API keys remembered for a short while, so a GET does not cost a key lookup.

A revoked key keeps working in a process for at most INFERHOOK_API_KEY_CACHE_SECONDS.
Unknown keys are not remembered (a flood of made-up keys cannot fill the memory).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from store.accounts import KeyInfo, hash_key, lookup_key

MAX_KEYS = 50_000


class KeyCache:
    """Key digest → (key info, monotonic expiry), least recently used evicted first."""

    def __init__(self, engine: AsyncEngine, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.ttl, self.clock = engine, ttl, clock
        self.entries: OrderedDict[str, tuple[KeyInfo, float]] = OrderedDict()

    def cached(self, key: str) -> KeyInfo | None:
        """The key's info if it was verified less than the TTL ago (no I/O: the hot path)."""
        digest = hash_key(key)
        hit = self.entries.get(digest)
        if hit is None or hit[1] <= self.clock():
            return None
        self.entries.move_to_end(digest)
        return hit[0]

    async def lookup(self, key: str) -> KeyInfo | None:
        """The live key `key`, or None; asks Postgres at most once per TTL per key."""
        found = self.cached(key)
        if found is not None:
            return found
        digest, now = hash_key(key), self.clock()
        info = await lookup_key(self.engine, key)
        if info is None:
            self.entries.pop(digest, None)
            return None
        self.entries[digest] = (info, now + self.ttl)
        if len(self.entries) > MAX_KEYS:
            self.entries.popitem(last=False)
        return info

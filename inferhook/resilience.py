"""Riding out outages of Kafka and Postgres: which errors mean "away", how long to wait, retries.

A service part that needs a server (the projector, the outbox worker, a producer's start)
runs under `retrying`: when it raises an error that `outage()` recognises, the server is
marked down (`inferhook_dependency_up{dependency}` = 0), one log line says so (then one
every few seconds while it stays down), and the part runs again after a capped, jittered
backoff; once a try has run for a while, or returned, the server is marked up again.
Parts that loop over passes of their own (reaper, retention) keep their loop and report
each pass to a `PartHealth` instead. Any other error is not an outage and propagates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from inferhook.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)
T = TypeVar("T")

LOG_EVERY = 5.0
"""Seconds between the log lines of a part that keeps waiting for a server."""


class Dependency(StrEnum):
    """A server the services need (the `dependency` label of the gauge)."""

    KAFKA = "kafka"
    POSTGRES = "postgres"


_POSTGRES_AWAY = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                  asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                  asyncpg.CrashShutdownError, PoolTimeout)
"""Errors of Postgres's client saying the server (or the way to it) is gone: class 08,
`the database system is starting up`/`shutting down`, a closed connection, a full pool."""

_KAFKA_NO_METADATA = "Unable to get cluster metadata"
"""How aiokafka's plain, non-retriable `KafkaError` begins when no known broker answered a
metadata request (`AIOKafkaClient.fetch_all_metadata`, used by topic creation and
`consumer.topics()`): every broker it knows is away or hung."""


def outage(exc: BaseException, *, network: Dependency | None = None) -> Dependency | None:
    """The server `exc` says is away, or None when it says something else (a bug, bad data).

    The error and its causes are asked (SQLAlchemy wraps asyncpg's errors, which may wrap
    an OSError). Kafka: an aiokafka error that calls itself `retriable`, a timeout, a
    lost connection, or metadata no broker answered for. Postgres: a connection-level
    error of asyncpg, or one SQLAlchemy invalidated its connection for. A bare network
    error (OSError, TimeoutError) names no server: it is charged to `network`, the one the
    failing code talks to.
    """
    seen: BaseException | None = exc
    bare_network = False
    for _ in range(10):  # a chain of causes is short; this also stops a cycle
        if seen is None:
            break
        if isinstance(seen, KafkaError):
            away = (seen.retriable or isinstance(seen, (KafkaTimeoutError, KafkaConnectionError))
                    or (bool(seen.args) and str(seen.args[0]).startswith(_KAFKA_NO_METADATA)))
            return Dependency.KAFKA if away else None
        if isinstance(seen, _POSTGRES_AWAY) or (isinstance(seen, DBAPIError)
                                                 and seen.connection_invalidated):
            return Dependency.POSTGRES
        bare_network = bare_network or isinstance(seen, OSError)  # TimeoutError included
        seen = seen.__cause__ or seen.__context__
    return network if bare_network else None


def mark(dependency: Dependency, up: bool) -> None:
    """Record whether `dependency` answers (the `inferhook_dependency_up` gauge)."""
    DEPENDENCY_UP.labels(dependency.value).set(1 if up else 0)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before trying again something that failed because a server was away."""

    first: float = 0.2
    """Seconds to wait after the first failure."""
    factor: float = 2.0
    """Each further failure multiplies the wait by this."""
    cap: float = 5.0
    """No wait is longer than this (before jitter)."""
    jitter: float = 0.2
    """Each wait is stretched or shrunk by up to this fraction, so processes do not retry in step."""

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after `failures` failures in a row (1 after the first): a pure rule,
        `min(cap, first * factor ** (failures - 1))`, then ± `jitter` of it at random."""
        base = min(self.cap, self.first * self.factor ** max(0, failures - 1))
        return max(0.0, base * (1 + self.jitter * (2 * (rng or random).random() - 1)))


class PartHealth:
    """What one part saw of its servers: throttled log lines, the gauge, the backoff count."""

    def __init__(self, part: str, *, network: Dependency | None = None,
                 backoff: Backoff = Backoff()) -> None:
        self.part, self.network, self.backoff = part, network, backoff
        self.failures = 0
        self.down: Dependency | None = None
        self._since = 0.0
        self._logged = -float("inf")

    def failed(self, exc: BaseException) -> bool:
        """Note a failure; True (and logged, gauge down) when it is an outage, else False."""
        dependency = outage(exc, network=self.network)
        if dependency is None:
            return False
        now = time.monotonic()
        self.failures += 1
        if self.down is None:
            self.down, self._since = dependency, now
        mark(dependency, up=False)
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            log.warning("%s: waiting for %s (%.0fs so far): %r", self.part, dependency.value,
                        now - self._since, exc)
        return True

    def ok(self, *dependencies: Dependency) -> None:
        """The part got through to `dependencies` (default: the one it waited for)."""
        if self.down is not None:
            log.info("%s: %s is back after %.1fs", self.part, self.down.value,
                     time.monotonic() - self._since)
            mark(self.down, up=True)
        for dependency in dependencies:
            mark(dependency, up=True)
        self.down, self.failures, self._logged = None, 0, -float("inf")

    async def pause(self, stop: asyncio.Event | None = None) -> None:
        """Wait the backoff for the failures so far (cut short when `stop` is set)."""
        delay = self.backoff.delay(self.failures)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


async def retrying(part: str, attempt: Callable[[], Awaitable[T]], *,
                   stop: asyncio.Event | None = None, uses: tuple[Dependency, ...] = (),
                   network: Dependency | None = None, settled: float = 10.0,
                   backoff: Backoff = Backoff()) -> T | None:
    """Run `attempt()` until it returns; after an outage error, run it again after a backoff.

    Returns what it returned, or None when `stop` was set while waiting to try again. A try
    that returns, or runs `settled` seconds, marks `uses` up (and ends the backoff).
    Errors that are not outages propagate.
    """
    health = PartHealth(part, network=network or (uses[0] if len(uses) == 1 else None),
                        backoff=backoff)
    while stop is None or not stop.is_set():
        task = asyncio.ensure_future(attempt())
        try:
            done, _ = await asyncio.wait({task}, timeout=settled)
            if not done:
                health.ok(*uses)
            result = await task
        except asyncio.CancelledError:
            task.cancel()
            with suppress(BaseException):
                await task
            raise
        except Exception as exc:
            if not health.failed(exc):
                raise
            await health.pause(stop)
            continue
        health.ok(*uses)
        return result
    return None

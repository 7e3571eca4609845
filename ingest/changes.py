"""Prediction changes pushed from Postgres: one LISTEN connection per process, fanned out.

The projector runs `pg_notify('inferhook_prediction_changed', '<id>:<status>')` in each
projection transaction. This process holds one asyncpg connection LISTENing on that
channel and wakes the in-memory watchers of that id: `Prefer: wait` requests and event
streams. The same channel carries `@<owner>` payloads (schemas.feed) that wake the owner's
account-feed long polls. No waiter polls Postgres; a woken waiter reads the row once. If
the connection drops, every watcher is woken (it re-reads, so nothing is missed) and the
feed reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

import asyncpg

from inferhook.db import PREDICTION_CHANGED
from inferhook.resilience import Backoff, Dependency, PartHealth
from schemas.feed import feed_notice, notice_owner
from schemas.status import Status

log = logging.getLogger(__name__)

RECONNECT = Backoff(first=0.1, cap=5.0)
"""Waits between connection attempts while Postgres is away."""


class Watch:
    """One waiter's view of one prediction: `changed` is set on every change notice."""

    __slots__ = ("changed", "status")

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.status: Status | None = None
        """The status the last notice carried (None when woken by a reconnect)."""

    def notify(self, status: Status | None) -> None:
        self.status = status
        self.changed.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for the next notice up to `timeout` seconds; True when one came."""
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except TimeoutError:
            return False
        self.changed.clear()
        return True


def _status(text: str) -> Status | None:
    try:
        return Status(text)
    except ValueError:
        return None


class ChangeFeed:
    """The LISTEN connection of this process and the watchers of each prediction id."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.watchers: dict[str, set[Watch]] = {}
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None
        """Postgres backend of the LISTEN connection while connected (for operators and tests)."""
        self._task: asyncio.Task[None] | None = None

    @contextmanager
    def watch(self, prediction_id: str) -> Iterator[Watch]:
        """Watch one prediction for as long as the block runs (cancellation included)."""
        watch = Watch()
        self.watchers.setdefault(prediction_id, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self.watchers.get(prediction_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self.watchers[prediction_id]

    def watch_owner(self, owner: str) -> AbstractContextManager[Watch]:
        """Watch an owner's event feed (`GET /v1/events`) for as long as the block runs."""
        return self.watch(feed_notice(owner))

    def count(self) -> int:
        """Watchers registered now (for tests and metrics)."""
        return sum(len(w) for w in self.watchers.values())

    def start(self) -> None:
        """Begin listening in the background (reconnecting until stop())."""
        self._task = asyncio.create_task(self._run(), name="change-feed")

    async def stop(self) -> None:
        """Close the connection and wake everyone still waiting."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._wake_all()

    def _on_notice(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if notice_owner(payload) is not None:
            key, status = payload, ""
        else:
            key, _, status = payload.rpartition(":")
        watchers = self.watchers.get(key)
        if not watchers:
            return
        for watch in watchers:
            watch.notify(_status(status))

    def _wake_all(self) -> None:
        for watchers in self.watchers.values():
            for watch in watchers:
                watch.notify(None)

    async def _run(self) -> None:
        """Listen; after any failure (Postgres away, restarting, the link cut) connect again."""
        health = PartHealth("change feed", network=Dependency.POSTGRES, backoff=RECONNECT)
        while True:
            try:
                await self._listen(health)
            except Exception as exc:
                if not health.failed(exc):
                    log.exception("change feed failed; reconnecting in %.0fs", RECONNECT.cap)
                    await asyncio.sleep(RECONNECT.cap)
                    continue
            await health.pause()

    async def _listen(self, health: PartHealth) -> None:
        """One connection's life: listen until Postgres ends it."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(PREDICTION_CHANGED, self._on_notice)
            health.ok(Dependency.POSTGRES)
            self.backend_pid = conn.get_server_pid()
            self.connected.set()
            # Anything that changed while we were not listening: let waiters re-read.
            self._wake_all()
            await lost.wait()
            log.warning("change feed connection lost; reconnecting")
        finally:
            self.connected.clear()
            self.backend_pid = None
            with suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))

"""Delivering the webhook outbox: claim due rows, send them, record the outcome.

Rows are claimed with FOR UPDATE SKIP LOCKED and leased by pushing `next_attempt_at`
forward, so several dispatchers share the work and a crashed one's rows come due again.
The outcome is written only if the row still carries our claim (its `attempts` count),
so a worker whose lease ran out cannot overwrite a newer attempt.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.backoff import retry_delay
from dispatcher.sender import Attempt, send
from inferhook.accounts import webhook_secret
from inferhook.settings import WebhookSettings

log = logging.getLogger(__name__)

CLAIM = text("""
UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = now() + :lease
WHERE id IN (
  SELECT id FROM webhook_deliveries
  WHERE state = 'pending' AND next_attempt_at <= now()
  ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, webhook_id, owner, url, body, attempts
""")

RECORD = text("""
UPDATE webhook_deliveries SET state = CAST(:state AS varchar), next_attempt_at = now() + :delay,
  last_status = :status, last_error = :error,
  finished_at = CASE WHEN CAST(:state AS varchar) = 'pending' THEN NULL ELSE now() END
WHERE id = :id AND attempts = :attempts
""")


@dataclass
class Claimed:
    """A delivery this worker holds the lease on."""

    id: int
    webhook_id: str
    owner: str
    url: str
    body: bytes
    attempts: int


class OutboxWorker:
    """Delivers due webhooks until stopped; `wake()` shortens the wait after new rows."""

    def __init__(self, engine: AsyncEngine, session: aiohttp.ClientSession,
                 settings: WebhookSettings, *, batch: int = 100, poll: float = 0.5) -> None:
        self.engine, self.session, self.settings = engine, session, settings
        self.batch, self.poll = batch, poll
        self.lease = timedelta(seconds=settings.timeout * 2 + 5)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows may be due now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until `stop` is set."""
        while not stop.is_set():
            claimed = await self.claim()
            if claimed:
                await asyncio.gather(*(self.deliver(c) for c in claimed))
                continue
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)

    async def claim(self) -> list[Claimed]:
        async with self.engine.begin() as conn:
            rows = (await conn.execute(CLAIM, {"lease": self.lease, "limit": self.batch})).all()
        return [Claimed(**row._mapping) for row in rows]

    async def deliver(self, claimed: Claimed) -> None:
        secret = await webhook_secret(self.engine, claimed.owner)
        attempt = await send(self.session, claimed.url, [secret], claimed.webhook_id,
                             claimed.body, self.settings.timeout)
        await self.record(claimed, attempt)

    async def record(self, claimed: Claimed, attempt: Attempt) -> None:
        params: dict[str, Any] = {"id": claimed.id, "attempts": claimed.attempts,
                                  "status": attempt.status, "error": attempt.error,
                                  "delay": timedelta(0)}
        if attempt.ok:
            params["state"] = "delivered"
        else:
            delay = None if attempt.gone else retry_delay(claimed.attempts,
                                                          self.settings.retry_schedule)
            if delay is not None and attempt.retry_after is not None:
                delay = min(max(delay, attempt.retry_after), 24 * 3600.0)
            params["state"] = "failed" if delay is None else "pending"
            params["delay"] = timedelta(seconds=delay or 0)
            log.info("webhook %s attempt %d failed (%s)%s", claimed.webhook_id,
                     claimed.attempts, attempt.error,
                     "; giving up" if delay is None else f"; retry in {delay:.1f}s")
        async with self.engine.begin() as conn:
            await conn.execute(RECORD, params)

"""Outbox gauges, refreshed by one cheap query every few seconds (any dispatcher may run it)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.metrics import OUTBOX_DUE, OUTBOX_OLDEST_DUE_AGE, OUTBOX_PENDING
from inferhook.resilience import Dependency, PartHealth

log = logging.getLogger(__name__)

OUTBOX_STATS = text("""
SELECT count(*) AS pending,
       count(*) FILTER (WHERE next_attempt_at <= now() AND claim_id IS NULL) AS due,
       COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)
                FILTER (WHERE next_attempt_at <= now() AND claim_id IS NULL)), 0) AS oldest_due_age
FROM webhook_deliveries WHERE state = 'pending'
""")
"""Pending rows, those due and not leased, and how long the oldest of those has been due."""


async def refresh_outbox_gauges(engine: AsyncEngine) -> None:
    """Query the outbox once and set its gauges."""
    async with engine.connect() as conn:
        row = (await conn.execute(OUTBOX_STATS)).one()
    OUTBOX_PENDING.set(row.pending)
    OUTBOX_DUE.set(row.due)
    OUTBOX_OLDEST_DUE_AGE.set(float(row.oldest_due_age))


async def report_outbox(engine: AsyncEngine, stop: asyncio.Event, *, interval: float) -> None:
    """Refresh the outbox gauges every `interval` seconds until `stop` is set (a refresh
    that fails, Postgres away or not, leaves them as they were and is tried next time)."""
    health = PartHealth("outbox gauges", network=Dependency.POSTGRES)
    while not stop.is_set():
        try:
            await refresh_outbox_gauges(engine)
            health.ok(Dependency.POSTGRES)
        except Exception as exc:
            if not health.failed(exc):
                log.warning("refreshing outbox gauges failed: %r", exc)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

"""Outbox gauges, refreshed by one cheap query every few seconds (any dispatcher may run it)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.metrics import (
    ENDPOINT_OLDEST_DUE_AGE,
    ENDPOINT_PENDING,
    ENDPOINT_STATE,
    OUTBOX_DUE,
    OUTBOX_OLDEST_DUE_AGE,
    OUTBOX_PENDING,
)
from inferhook.resilience import Dependency, PartHealth
from store import endpoints, outbox

log = logging.getLogger(__name__)

async def refresh_outbox_gauges(engine: AsyncEngine) -> None:
    """Query the outbox once and set its gauges."""
    async with engine.connect() as conn:
        stats = await outbox.stats(conn)
    OUTBOX_PENDING.set(stats.pending)
    OUTBOX_DUE.set(stats.due)
    OUTBOX_OLDEST_DUE_AGE.set(stats.oldest_due_age)
    async with engine.connect() as conn:
        per_endpoint = await endpoints.stats(conn)
    for e in per_endpoint:
        ENDPOINT_PENDING.labels(e.id).set(e.pending)
        ENDPOINT_OLDEST_DUE_AGE.labels(e.id).set(e.oldest_due_age)
        ENDPOINT_STATE.labels(e.id).set(2 if e.disabled else 1 if e.failing else 0)


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

"""The retention sweep: expired predictions lose their input, output and logs.

A prediction's `expires_at` is set when it completes (completed_at plus its result TTL).
Past it, the row keeps its status, timings and error but not its data (`data_removed`),
and the same data is stripped from its event history and its finished webhook bodies.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.resilience import Dependency, PartHealth
from store import predictions

log = logging.getLogger(__name__)


async def sweep_once(engine: AsyncEngine, limit: int = 1000) -> int:
    """Clear up to `limit` expired predictions; returns how many."""
    async with engine.begin() as conn:
        return await predictions.sweep_expired(conn, limit)


async def run_retention(engine: AsyncEngine, stop: asyncio.Event, *, interval: float) -> None:
    """Sweep every `interval` seconds until `stop` is set (batches until nothing is left);
    a sweep that fails (Postgres away) is tried again next interval."""
    health = PartHealth("retention sweep", network=Dependency.POSTGRES)
    while not stop.is_set():
        try:
            total = 0
            while (cleared := await sweep_once(engine)) > 0:
                total += cleared
            health.ok(Dependency.POSTGRES)
            if total:
                log.info("retention: cleared the data of %d expired predictions", total)
        except Exception as exc:
            if not health.failed(exc):
                log.exception("retention sweep failed; trying again next interval")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

"""The retention sweep: expired predictions lose their input, output and logs; expired
files are deleted.

A prediction's `expires_at` is set when it completes (completed_at plus its result TTL).
Past it, the row keeps its status, timings and error but not its data (`data_removed`),
and the same data is stripped from its event history and its finished webhook bodies.
Files made from its outputs expire at the same time (dispatcher.outfiles); uploads after
INFERHOOK_FILES_UPLOAD_TTL_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.resilience import Dependency, PartHealth
from store import predictions
from store.files import FileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    """What one sweep removed."""

    predictions: int = 0
    """Predictions whose data was cleared."""
    files: int = 0
    """Files deleted."""

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.predictions + other.predictions, self.files + other.files)

    def __bool__(self) -> bool:
        return bool(self.predictions or self.files)


async def sweep_once(engine: AsyncEngine, files: FileStore, limit: int = 1000) -> Swept:
    """Clear up to `limit` expired predictions and delete up to `limit` expired files."""
    async with engine.begin() as conn:
        return Swept(await predictions.sweep_expired(conn, limit), await files.sweep(conn, limit))


async def run_retention(engine: AsyncEngine, stop: asyncio.Event, *, interval: float,
                        files: FileStore) -> None:
    """Sweep every `interval` seconds until `stop` is set (batches until nothing is left);
    a sweep that fails (Postgres away) is tried again next interval."""
    health = PartHealth("retention sweep", network=Dependency.POSTGRES)
    while not stop.is_set():
        try:
            total = Swept()
            while swept := await sweep_once(engine, files):
                total += swept
            health.ok(Dependency.POSTGRES)
            if total:
                log.info("retention: cleared the data of %d expired predictions, deleted %d "
                         "expired files", total.predictions, total.files)
        except Exception as exc:
            if not health.failed(exc):
                log.exception("retention sweep failed; trying again next interval")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

"""`Prefer: wait`: hold a request until its prediction is terminal or the time is up.

Waiters sleep on the process's change feed (see ingest.changes) and read the row only
when a notice says the prediction reached a terminal state, so thousands of waiters cost
no Postgres traffic while they wait. A client that hangs up cancels its handler (the app
runs with handler cancellation), which leaves the watch block and frees the waiter; the
prediction itself runs on.
"""

from __future__ import annotations

import time

from aiohttp import web

from ingest.headers import prefer_wait
from ingest.state import CHANGES, ENGINE, SETTINGS, SHARED_READS
from schemas.status import Status
from schemas.tables import PredictionRow


def wanted_wait(request: web.Request) -> int | None:
    """Seconds the client asked to wait (`Prefer: wait[=n]`, clamped), or None."""
    return prefer_wait(request.headers.get("Prefer"), request.app[SETTINGS].api.wait_max_seconds)


async def wait_terminal(app: web.Application, row: PredictionRow, seconds: float) -> PredictionRow:
    """The prediction once terminal, or as it is after `seconds`."""
    if Status(row.status).is_terminal():
        return row
    engine, reads = app[ENGINE], app[SHARED_READS]

    async def reread(current: PredictionRow) -> PredictionRow:
        return await reads.load(engine, current.id, current.owner, time.monotonic()) or current

    deadline = time.monotonic() + seconds
    with app[CHANGES].watch(row.id) as watch:
        # Re-read after registering: a change committed just before would otherwise be missed.
        row = await reread(row)
        while not Status(row.status).is_terminal():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await watch.wait(remaining):
                break
            if watch.status is None or watch.status.is_terminal():
                row = await reread(row)
    if not Status(row.status).is_terminal():
        row = await reread(row)
    return row


def preference_applied(response: web.StreamResponse, seconds: int | None) -> None:
    """Tell the client its wait preference was honoured."""
    if seconds is not None:
        response.headers["Preference-Applied"] = f"wait={seconds}"

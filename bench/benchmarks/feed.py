"""feed: how soon a long-polling `GET /v1/events` (`Prefer: wait`) answers once the event it
waits for is projected (issue 13: woken within 100 ms), against a `Prefer: wait` GET of the
prediction woken by the same event in the same round.

Each round creates a prediction of a model the bench executor does not serve (it stays
pending), holds both requests, then cancels it: the `canceled` event's projection commit
wakes both. A latency is the client's clock when the answer was read minus the commit
timestamp of that event's history row (needs track_commit_timestamp, which the private
bench stack turns on). A round whose waiters had not been sent before the commit is left out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import Context
from bench.results import Goal, GoalKind, Result
from bench.stats import percentile_ms
from schemas.events import OUT_OF_BAND_SEQUENCE

ROUNDS = 100
OWNER = "benchfeed"
MODEL = "inferhook/spin"
"""Not served by the bench executor, so a prediction of it waits until it is canceled."""
CANCELED = "inferhook.prediction.canceled"
SETTLE = 0.1
"""Seconds between sending the waiters and the cancel, for ingest to register them."""
GOAL_MS = 100.0
FEED = "feed long-poll wake {q} (event projected → waiter answered)"
BASELINE = "Prefer: wait on the prediction, same event"
COMMITTED = """
SELECT CASE WHEN current_setting('track_commit_timestamp') = 'on'
            THEN extract(epoch FROM pg_xact_commit_timestamp(xmin)) END AS at
FROM prediction_events WHERE prediction_id = $1 AND sequence = $2
"""


def figures(feed: list[float], get: list[float]) -> list[Result]:
    """p50 and p99 of the feed's wake latencies (seconds in, ms out), each beside the
    prediction wait's."""
    return [Result.measure(FEED.format(q=f"p{q}"), "ms", percentile_ms(feed, q),
                           baseline=(BASELINE, percentile_ms(get, q)),
                           goal=Goal(GoalKind.VALUE_MAX, GOAL_MS))
            for q in (50, 99)]


async def _held(ctx: Context, url: str, headers: dict[str, str],
                params: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    """(wall clock when the answer was read, its JSON)."""
    async with ctx.http.get(url, headers=headers, params=params) as response:
        body: dict[str, Any] = await response.json()
        return time.time(), body


async def _round(ctx: Context, auth: dict[str, str], cursor: str
                 ) -> tuple[float | None, float | None, str]:
    """One round: (feed seconds, prediction-wait seconds, the feed's next cursor)."""
    base = ctx.stack.base_url
    async with ctx.http.post(f"{base}/v1/predictions", headers=auth,
                             json={"model": MODEL, "input": ctx.example(MODEL)}) as response:
        created: dict[str, Any] = await response.json()
    waiting = {**auth, "Prefer": "wait=30"}
    sent = time.time()
    feed = asyncio.create_task(_held(ctx, f"{base}/v1/events", waiting,
                                     {"after": cursor, "types": CANCELED}))
    get = asyncio.create_task(_held(ctx, created["urls"]["get"], waiting))
    await asyncio.sleep(SETTLE)
    async with ctx.http.post(created["urls"]["cancel"], headers=auth) as response:
        await response.read()
    (fed_at, page), (got_at, prediction) = await asyncio.gather(feed, get)
    committed = await ctx.db.fetchval(COMMITTED, created["id"], OUT_OF_BAND_SEQUENCE)
    woken = [e for e in page["results"] if e["prediction_id"] == created["id"]]
    if committed is None or float(committed) < sent or not woken \
            or prediction["status"] != "canceled":
        return None, None, page["next"]
    return fed_at - float(committed), got_at - float(committed), page["next"]


async def run(ctx: Context) -> list[Result]:
    """ROUNDS rounds, one at a time; the figures of the rounds that count."""
    key = ctx.stack.cli("keys", "create", "--owner", OWNER).strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}
    async with ctx.http.get(f"{ctx.stack.base_url}/v1/events", headers=auth,
                            params={"types": CANCELED, "limit": "500"}) as response:
        start: dict[str, Any] = await response.json()
    cursor = start["next"]
    feed_s: list[float] = []
    get_s: list[float] = []
    for _ in range(ROUNDS):
        fed, got, cursor = await _round(ctx, auth, cursor)
        if fed is not None and got is not None:
            feed_s.append(fed)
            get_s.append(got)
    if not feed_s:
        ctx.note("feed", "no round counted (no commit timestamps: track_commit_timestamp is "
                         "off where the stack runs, or no waiter was answered): not measured.")
    elif len(feed_s) < ROUNDS:
        ctx.note("feed", f"{ROUNDS - len(feed_s)} of {ROUNDS} rounds left out (waiters sent "
                         "after the commit, or no answer with the event).")
    return figures(feed_s, get_s)

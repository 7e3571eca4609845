"""projection: events/s a fresh dispatcher applies to Postgres from a pre-filled events
topic (created → started → succeeded per prediction), against a bare consumer that only
reads and decodes the same events. Goal (issue 11): ≥ 30,000 events/s.

The applied count is sampled from Postgres every 100 ms (prediction_events rows in the
fixture's id range); the rate runs from the first sample that saw rows to the one that
saw them all, so dispatcher start-up and group join don't count.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.context import DIGITS, Context, Plot, Series
from bench.events import lifecycle, produce
from bench.results import Goal, GoalKind, Result
from cli.infra.process import terminate
from inferhook.settings import KafkaSettings
from schemas.topics import Topics

PREDICTIONS = 10_000
EVENTS = 3 * PREDICTIONS
TIMEOUT = 120.0
OUTPUT = {"digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}


async def applied_rate(ctx: Context, first_id: str, last_id: str,
                       plot: Plot) -> tuple[float, int]:
    """Sample the applied count until every event is in; return (events/s, applied)."""
    series = Series("rows applied", [], [])
    plot.series.append(series)
    start: tuple[float, int] | None = None
    now, count = time.monotonic(), 0
    deadline = now + TIMEOUT
    while now < deadline:
        count = await ctx.db.fetchval(
            "SELECT count(*) FROM prediction_events WHERE prediction_id BETWEEN $1 AND $2",
            first_id, last_id)
        now = time.monotonic()
        if count and start is None:
            start = (now, count)
        if start is not None:
            series.x.append(now - start[0])
            series.y.append(count)
        if count >= EVENTS:
            break
        await asyncio.sleep(0.1)
    if start is None or now <= start[0]:
        return 0.0, count
    return (count - start[1]) / (now - start[0]), count


async def run(ctx: Context) -> list[Result]:
    """Fill a fresh events topic, read it bare, then let a fresh dispatcher project it."""
    topics = Topics(f"{ctx.stack.topic_prefix}p{uuid.uuid4().hex[:6]}")
    kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap, topic_prefix=topics.prefix)
    events = list(lifecycle("benchproj", DIGITS, ctx.example(), OUTPUT, PREDICTIONS))
    await produce(kafka, topics.events, events)
    bare = await ctx.tool("drain", "--bootstrap", ctx.stack.kafka_bootstrap, "--topic",
                          topics.events, "--expect", str(EVENTS), timeout=180)
    bare_rate = bare["count"] / bare["seconds"] if bare["seconds"] else None
    plot = Plot("projection", f"Projection of {EVENTS:,} events into Postgres",
                "seconds since the first rows", "event rows applied")
    service = ctx.stack.spawn_service("dispatcher", log_name=f"dispatcher-{topics.prefix}",
                                      INFERHOOK_KAFKA_TOPIC_PREFIX=topics.prefix)
    try:
        rate, applied = await applied_rate(ctx, events[0].subject, events[-1].subject, plot)
    finally:
        await asyncio.to_thread(terminate, service.pid, timeout=10)
    ctx.plots.append(plot)
    if applied < EVENTS:
        ctx.note("projection", f"only {applied:,} of {EVENTS:,} events applied within "
                               f"{TIMEOUT:.0f} s; the rate is over what was applied.")
    return [Result.measure("projection", "events/s", rate,
                           baseline=("bare consumer, read + decode", bare_rate),
                           goal=Goal(GoalKind.VALUE_MIN, 30_000))]

"""hops: the per-hop latency breakdown of a prediction (bench.hops), inferhook/digits, one
`completed` webhook each, open loop, quiet (20/s) and at the e2e goal's rate (200/s).

The points come from what is already recorded (prediction rows, the outbox row and its
attempts, PostgreSQL's commit timestamps, the broker's append times of the request and
the outcome) and the load generator's clocks; the rows give each hop's p50,
bench/results/hops.md its p50 / p90 / p99. For its runs the request topic of
inferhook/digits and the events topic stamp records with the broker's append time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bench.benchmarks.openloop import open_loop, tracked
from bench.context import DIGITS, Context
from bench.hops import ANSWER, MISSING, PATH, TOTAL, Spread, Timeline, breakdown, table
from bench.kafka_times import Headers, Stamps, stamped
from bench.results import Result
from schemas.topics import Topics

RATES = ((20.0, 10.0), (200.0, 5.0))
"""(predictions per second, seconds of sending)."""
TERMINAL_TYPES = ["inferhook.prediction.succeeded", "inferhook.prediction.failed",
                  "inferhook.prediction.canceled"]
POINTS = """
SELECT p.id, p.created_at, p.started_at, p.completed_at,
       (p.metrics->>'predict_time')::float8 AS predict_time,
       d.created_at AS projecting,
       CASE WHEN current_setting('track_commit_timestamp') = 'on'
            THEN pg_xact_commit_timestamp(e.xmin) END AS projected,
       (SELECT min(a.started_at) FROM webhook_attempts AS a WHERE a.delivery_id = d.id)
         AS attempted
FROM predictions AS p
JOIN webhook_deliveries AS d ON d.prediction_id = p.id AND d.event_type = ANY($2::text[])
LEFT JOIN prediction_events AS e ON e.prediction_id = p.id AND e.sequence = d.sequence
WHERE p.id = ANY($1::text[])
"""


def _wall(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _outcome(headers: Headers) -> bool:
    return dict(headers).get("ce_type", b"").decode() in TERMINAL_TYPES


async def timelines(ctx: Context, result: dict[str, Any], topics: Topics,
                    stamps: Stamps) -> list[Timeline]:
    """The timeline of every prediction of an open-loop run whose webhook arrived."""
    samples = {s["prediction_id"]: s for s in tracked(result) if s["webhook_wall"] is not None}
    offset = result["wall_offset"]
    rows = await ctx.db.fetch(POINTS, list(samples), TERMINAL_TYPES)
    queued = await stamps.read(topics.requests(DIGITS), set(samples))
    emitted = await stamps.read(topics.events, set(samples), _outcome)
    return [Timeline(
        submitted=samples[r["id"]]["due"] + offset, accepted=_wall(r["created_at"]),
        answered=samples[r["id"]]["responded"] + offset, queued=queued.get(r["id"]),
        started=_wall(r["started_at"]), succeeded=_wall(r["completed_at"]),
        emitted=emitted.get(r["id"]), projecting=_wall(r["projecting"]),
        projected=_wall(r["projected"]), attempted=_wall(r["attempted"]),
        received=samples[r["id"]]["webhook_wall"], predict_time=r["predict_time"],
    ) for r in rows]


async def run(ctx: Context) -> list[Result]:
    """One open-loop run per rate; each hop's p50 as a row, the full table as a file."""
    by_rate: dict[float, dict[str, Spread]] = {}
    results: list[Result] = []
    topics = Topics(ctx.stack.topic_prefix)
    stamping = [topics.requests(DIGITS), topics.events]
    for rate, seconds in RATES:
        await ctx.settle()
        async with stamped(ctx.stack.kafka_bootstrap, stamping) as stamps:
            result = await open_loop(ctx, rate, seconds, drain=60.0)
            found = await timelines(ctx, result, topics, stamps)
        hops = by_rate[rate] = breakdown(found)
        results += [Result.measure(f"hop {hop.name} p50 @ {rate:g}/s", "ms", hops[hop.name].p50)
                    for hop in (*PATH, ANSWER, TOTAL)]
        if len(found) < len(tracked(result)):
            ctx.note("hops", f"at {rate:g}/s {len(tracked(result)) - len(found)} of "
                             f"{len(tracked(result))} predictions left out (webhook or rows "
                             "missing).")
    if all(by_rate[r]["projection began → projected"].count == 0 for r in by_rate):
        ctx.note("hops", "PostgreSQL keeps no commit timestamps here (track_commit_timestamp "
                         "off): the projection's commit is not split out.")
    ctx.note("hops", f"Not recorded: {MISSING}")
    ctx.files["hops.md"] = (
        "# Where a prediction's time goes (bench/hops.py)\n\n"
        "Milliseconds per hop over the predictions of each open-loop run; hops on the "
        "webhook's path are in order, then the 201 (off that path), the whole, and the "
        "model's own predict_time.\n\n" + table(by_rate) + f"\n\nNot recorded: {MISSING}\n")
    await ctx.settle()
    return results

"""scale: GET p99 and create throughput with 10 thousand against 1 million predictions in
Postgres (goal: at most 1.2x worse, issue 6), and the resident memory of every process
before and after a run at 200 predictions/s (flat: ≤ 1.1x for our services).

The rows are filler written straight into the predictions table with generate_series
(a fixture, spread over 100 owners), then VACUUM ANALYZE and CHECKPOINT, so the table is
as a steady-state one is rather than fresh from a bulk load.
The memory run is `--soak-seconds` long (default 120 s to fit the 15-minute budget;
issue 6 asks for 600).
"""

from __future__ import annotations

import asyncpg
import orjson

from bench.benchmarks.get import make_ids
from bench.benchmarks.openloop import missing, open_loop, overheads
from bench.context import DIGITS, Context
from bench.results import Goal, GoalKind, Result
from bench.stats import percentile_ms
from bench.wrk import WrkRun, run_wrk

SMALL = 10_000
CHUNK = 250_000
OUTPUT = {"digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}
FILL = """
INSERT INTO predictions (id, owner, model, status, input, output, webhook_events_filter,
                         metrics, logs, created_at, started_at, completed_at, last_sequence,
                         data_removed)
SELECT 'fill-' || lpad(g::text, 9, '0'), 'benchfill' || (g % 100), $1, 'succeeded',
       $2::jsonb, $3::jsonb, '[]'::jsonb, '{"predict_time": 0.001}'::jsonb, '',
       now() - g * interval '1 second', now(), now(), 2, false
FROM generate_series($4::bigint, $5::bigint) AS g
"""


async def fill_to(ctx: Context, rows: int) -> None:
    """Add filler predictions until the table holds `rows`, then VACUUM ANALYZE it."""
    have = await ctx.db.fetchval("SELECT count(*) FROM predictions")
    filled = await ctx.db.fetchval("SELECT count(*) FROM predictions WHERE id LIKE 'fill-%'")
    payload, output = orjson.dumps(ctx.example()).decode(), orjson.dumps(OUTPUT).decode()
    start = filled + 1
    while have < rows:
        count = min(CHUNK, rows - have)
        await ctx.db.execute(FILL, DIGITS, payload, output, start, start + count - 1,
                             timeout=600)
        start, have = start + count, have + count
        ctx.console.log(f"predictions in Postgres: {have:,}")
    await ctx.db.execute("VACUUM ANALYZE predictions", timeout=600)
    try:  # a steady-state table has no bulk load's WAL waiting for a checkpoint
        await ctx.db.execute("CHECKPOINT", timeout=600)
    except asyncpg.InsufficientPrivilegeError:
        ctx.note("scale", "CHECKPOINT after the fill was refused (not a superuser).")


async def measure(ctx: Context, ids_file: str) -> tuple[WrkRun, WrkRun]:
    """GET on finished predictions, then create; the stack settles after each."""
    opts = ctx.options
    got = await run_wrk(ctx.stack.base_url, "get", ctx.stack.key, ids_file, seconds=opts.seconds,
                        connections=opts.connections)
    made = await run_wrk(ctx.stack.base_url, "post", ctx.stack.key, str(ctx.body_file()),
                         seconds=opts.seconds, connections=opts.connections)
    await ctx.settle(timeout=180)
    return got, made


def memory(ctx: Context) -> dict[str, int]:
    """Resident bytes of each process of the stack (PostgreSQL: PSS of all its processes)."""
    sizes = {name: ctx.rss(service.pid) for name, service in ctx.stack.services.items()}
    if ctx.stack.kafka is not None and ctx.stack.kafka.pid is not None:
        sizes["kafka"] = ctx.rss(ctx.stack.kafka.pid)
    if ctx.stack.postgres is not None and ctx.stack.postgres.pid is not None:
        sizes["postgres"] = ctx.rss(ctx.stack.postgres.pid, tree=True)
    return sizes


async def soak(ctx: Context) -> list[Result]:
    """Memory of each process before and after `soak_seconds` at 200/s."""
    seconds = ctx.options.soak_seconds
    if not ctx.stack.services:
        ctx.note("scale", "memory not measured: the stack runs outside this benchmark.")
        return []
    before = memory(ctx)
    result = await open_loop(ctx, 200, seconds, drain=60)
    await ctx.settle()
    after = memory(ctx)
    lost = missing(result)
    ctx.note("scale", f"memory soak: {seconds:g} s at 200/s ({len(result['samples'])} "
                      f"predictions, {lost} webhooks missing, e2e overhead p99 "
                      f"{percentile_ms(overheads(result), 99) or 0:.1f} ms).")
    mib = 1024 * 1024
    return [Result.measure(f"RSS {name} after {seconds:g} s at 200/s", "MiB", after[name] / mib,
                           baseline=("before", before[name] / mib),
                           goal=Goal(GoalKind.RATIO_MAX, 1.1) if name in ctx.stack.services
                           else None)
            for name in before]


async def run(ctx: Context) -> list[Result]:
    """Small table, measure; large table, measure; then the memory run."""
    await ctx.settle()
    ids_file = ctx.tmp / "scale-ids.txt"
    ids_file.write_text("\n".join(await make_ids(ctx, 200)) + "\n")
    await fill_to(ctx, SMALL)
    small_get, small_create = await measure(ctx, str(ids_file))
    await fill_to(ctx, ctx.options.fill_rows)
    large_get, large_create = await measure(ctx, str(ids_file))
    big = f"{ctx.options.fill_rows / 1e6:g}M rows"
    results = [
        Result.measure(f"get p99 @ {big}", "ms", large_get.p(99),
                       baseline=("10k rows", small_get.p(99)), goal=Goal(GoalKind.RATIO_MAX, 1.2)),
        Result.measure(f"create throughput @ {big}", "req/s", large_create.per_second,
                       baseline=("10k rows", small_create.per_second),
                       goal=Goal(GoalKind.RATIO_MIN, 1 / 1.2)),
    ]
    return results + await soak(ctx)


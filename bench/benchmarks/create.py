"""create: POST /v1/predictions at 64 connections (wrk) against a bare aiohttp handler
that answers the same JSON. Goal (issue 3): throughput ≥ 0.6x the bare handler."""

from __future__ import annotations

from bench.benchmarks.http import canned_bodies, latency_plot, versus_bare
from bench.context import Context
from bench.results import Goal, GoalKind, Result


async def run(ctx: Context) -> list[Result]:
    """Closed-loop create load on inferhook, then the same on the bare server."""
    create_body, get_body = await canned_bodies(ctx)
    ours, bare = await versus_bare(ctx, "post", [ctx.stack.key, str(ctx.body_file())],
                                   create_body, get_body)
    if ours.errors:
        ctx.note("create", f"{ours.errors} of {ours.requests} creates failed (non-2xx or socket).")
    ctx.plots.append(latency_plot("create_latency", f"POST /v1/predictions, "
                                  f"{ctx.options.connections} connections", ours, bare))
    bare_name = "bare aiohttp handler"
    return [
        Result.measure("create throughput", "req/s", ours.per_second,
                       baseline=(bare_name, bare.per_second), goal=Goal(GoalKind.RATIO_MIN, 0.6)),
        Result.measure("create p50", "ms", ours.p(50), baseline=(bare_name, bare.p(50))),
        Result.measure("create p99", "ms", ours.p(99), baseline=(bare_name, bare.p(99))),
    ]

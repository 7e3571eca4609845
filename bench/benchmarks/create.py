"""create: POST /v1/predictions at 64 connections (wrk) against a bare aiohttp handler
that answers the same JSON. Goal (issue 3): throughput ≥ 0.6x the bare handler."""

from __future__ import annotations

from bench.benchmarks.http import canned_bodies, latency_plot, versus_bare, versus_bare_results
from bench.context import Context
from bench.results import Result


async def run(ctx: Context) -> list[Result]:
    """Closed-loop create load on inferhook, then the same on the bare server."""
    create_body, get_body = await canned_bodies(ctx)
    ours, bare = await versus_bare(ctx, "post", [ctx.stack.key, str(ctx.body_file())],
                                   create_body, get_body)
    if ours.errors:
        ctx.note("create", f"{ours.errors} of {ours.requests} creates failed (non-2xx or socket).")
    ctx.plots.append(latency_plot("create_latency", f"POST /v1/predictions, "
                                  f"{ctx.options.connections} connections", ours, bare))
    return versus_bare_results("create", ours, bare, 0.6)

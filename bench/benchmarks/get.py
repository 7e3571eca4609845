"""get: GET /v1/predictions/{id} at 64 connections (wrk) over 200 finished predictions,
against a bare aiohttp handler answering the same JSON. Goal (issue 3): ≥ 0.7x bare."""

from __future__ import annotations

import asyncio

from bench.benchmarks.http import canned_bodies, latency_plot, versus_bare, versus_bare_results
from bench.context import DIGITS, Context
from bench.results import Result

PREDICTIONS = 200


async def make_ids(ctx: Context, count: int) -> list[str]:
    """Create `count` predictions (20 at a time) and wait until they are finished."""
    ids: list[str] = []
    body = {"model": DIGITS, "input": ctx.example()}
    for _ in range(0, count, 20):
        answers = await asyncio.gather(*(ctx.create(body) for _ in range(20)))
        ids += [created["id"] for status, created, _ in answers if status == 201]
    await ctx.settle()
    return ids[:count]


async def run(ctx: Context) -> list[Result]:
    """Closed-loop GET load on inferhook, then the same on the bare server."""
    create_body, get_body = await canned_bodies(ctx)
    ids_file = ctx.tmp / "get-ids.txt"
    ids_file.write_text("\n".join(await make_ids(ctx, PREDICTIONS)) + "\n")
    ours, bare = await versus_bare(ctx, "get", [ctx.stack.key, str(ids_file)],
                                   create_body, get_body)
    if ours.errors:
        ctx.note("get", f"{ours.errors} of {ours.requests} GETs failed (non-2xx or socket).")
    ctx.plots.append(latency_plot("get_latency", f"GET /v1/predictions/{{id}}, "
                                  f"{ctx.options.connections} connections", ours, bare))
    return versus_bare_results("get", ours, bare, 0.7)

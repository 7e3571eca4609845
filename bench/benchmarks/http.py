"""Helpers for the HTTP benchmarks: a real prediction to copy, and wrk against two servers."""

from __future__ import annotations

import orjson

from bench.context import DIGITS, Context, Plot, Series
from bench.results import Goal, GoalKind, Result
from bench.wrk import WrkRun, run_wrk

PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9)


async def canned_bodies(ctx: Context) -> tuple[bytes, bytes]:
    """The 201 body of a real create and the GET body of the same prediction once done,
    for the bare baseline server to answer byte-for-byte alike."""
    status, created, _ = await ctx.create({"model": DIGITS, "input": ctx.example()})
    if status != 201:
        raise RuntimeError(f"create answered {status}: {created}")
    await ctx.settle()
    _, got, _ = await ctx.get(created["id"])
    return orjson.dumps(created), orjson.dumps(got)


async def versus_bare(ctx: Context, script: str, args: list[str], create_body: bytes,
                      get_body: bytes) -> tuple[WrkRun, WrkRun]:
    """wrk with the same script against inferhook, then against the bare server."""
    opts = ctx.options
    ours = await run_wrk(ctx.stack.base_url, script, *args, seconds=opts.seconds,
                         connections=opts.connections)
    await ctx.settle()
    async with ctx.bare_server(create_body, get_body) as (bare_url, _):
        bare = await run_wrk(bare_url, script, *args, seconds=opts.seconds,
                             connections=opts.connections)
    return ours, bare


def latency_plot(name: str, title: str, ours: WrkRun, bare: WrkRun) -> Plot:
    """Latency percentiles of both runs, one line each."""
    return Plot(name=name, title=title, xlabel="percentile", ylabel="latency (ms)", log_y=True,
                series=[Series("inferhook", list(PERCENTILES), [ours.p(q) for q in PERCENTILES]),
                        Series("bare aiohttp", list(PERCENTILES),
                               [bare.p(q) for q in PERCENTILES])])


BARE = "bare aiohttp handler"


def versus_bare_results(label: str, ours: WrkRun, bare: WrkRun, ratio_goal: float) -> list[Result]:
    """Throughput (with its ratio goal), p50 and p99 of one route against the bare handler."""
    return [
        Result.measure(f"{label} throughput", "req/s", ours.per_second,
                       baseline=(BARE, bare.per_second), goal=Goal(GoalKind.RATIO_MIN, ratio_goal)),
        Result.measure(f"{label} p50", "ms", ours.p(50), baseline=(BARE, bare.p(50))),
        Result.measure(f"{label} p99", "ms", ours.p(99), baseline=(BARE, bare.p(99))),
    ]

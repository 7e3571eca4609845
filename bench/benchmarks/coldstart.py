"""coldstart: each model's cold start in parts, in a fresh process against a warm one.

For every model of the catalog, bench.tools.cold_start runs twice, each in a process of its
own: `fresh` is what scaling a model from zero pays with a new executor process (process
start, imports, the model files read with their pages dropped from the page cache, ORT
session creation, handler import and setup, the first run); `warm` is what a pooled
executor already running pays for the same model (imports done, ORT initialised by
another model, the files read once per host and served from the page cache). The rows
give both totals (warm against fresh); the notes give every part.
"""

from __future__ import annotations

import time

from bench.context import Context
from bench.results import Result

PARTS = ("process_start", "imports", "file_read", "session", "handler", "first_run")


def _parts(result: dict[str, float]) -> str:
    return ", ".join(f"{part} {result[part] * 1000:.0f}" for part in PARTS)


async def run(ctx: Context) -> list[Result]:
    """Fresh and warm cold start of every model."""
    results: list[Result] = []
    for model in ctx.catalog():
        short = model.split("/", 1)[1]
        fresh = await ctx.tool("cold_start", "--model", model, "--mode", "fresh",
                               "--spawned-at", repr(time.time()), timeout=600)
        warm = await ctx.tool("cold_start", "--model", model, "--mode", "warm", timeout=600)
        results += [
            Result.measure(f"cold start {short}: fresh process", "ms", fresh["total"] * 1000),
            Result.measure(f"cold start {short}: warm pooled process", "ms", warm["total"] * 1000,
                           baseline=("fresh process, files not cached", fresh["total"] * 1000)),
        ]
        ctx.note("coldstart", f"{short} ({fresh['size_mb']:.1f} MB, {fresh['provider']}) ms: "
                              f"fresh ({_parts(fresh['parts'])}); warm ({_parts(warm['parts'])}).")
    return results

"""One module per benchmark, each with `run(ctx) -> list[Result]`, registered in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.benchmarks import create, e2e, executor, get, projection, scale, wait, webhooks
from bench.context import Context
from bench.results import Result

Benchmark = Callable[[Context], Awaitable[list[Result]]]

BENCHMARKS: dict[str, Benchmark] = {
    "create": create.run,
    "get": get.run,
    "e2e": e2e.run,
    "executor": executor.run,
    "projection": projection.run,
    "webhooks": webhooks.run,
    "wait": wait.run,
    "scale": scale.run,
}
"""Every benchmark, in the order a full run takes them (scale last: it leaves 1M rows)."""

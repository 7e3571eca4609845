"""One module per benchmark, each with `run(ctx) -> list[Result]`, registered in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.benchmarks import (
    capacity,
    coldstart,
    cpu,
    create,
    durable,
    e2e,
    executor,
    fanout,
    feed,
    first_token,
    get,
    hops,
    profiles,
    projection,
    scale,
    scalezero,
    scheduling,
    speech,
    wait,
    webhooks,
)
from bench.context import Context
from bench.results import Result

Benchmark = Callable[[Context], Awaitable[list[Result]]]

BENCHMARKS: dict[str, Benchmark] = {
    "create": create.run,
    "durable": durable.run,
    "get": get.run,
    "cpu": cpu.run,
    "hops": hops.run,
    "e2e": e2e.run,
    "capacity": capacity.run,
    "profiles": profiles.run,
    "executor": executor.run,
    "projection": projection.run,
    "webhooks": webhooks.run,
    "fanout": fanout.run,
    "scheduling": scheduling.run,
    "wait": wait.run,
    "feed": feed.run,
    "speech": speech.run,
    "first_token": first_token.run,
    "coldstart": coldstart.run,
    "scalezero": scalezero.run,
    "scale": scale.run,
}
"""Every benchmark, in the order a full run takes them (cpu on a quiet stack, before the
benchmarks that leave work or rows behind; profiles apart from cpu, since its samplers take
CPU too; speech and first_token start executors of their own; scale last: it leaves 1M rows)."""

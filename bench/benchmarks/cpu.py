"""cpu: CPU per prediction of each process of the stack (ingest, executor, dispatcher,
Kafka, PostgreSQL) at 50/s and at 500/s: inferhook/digits, one `completed` webhook per
prediction to a local receiver, open loop. Goals (issue 11), all five together: ≤ 3 ms at
50/s, ≤ 1.5 ms at 500/s.

Each process's CPU seconds (bench.cpu, from /proc) are read just before the load
generator starts and again once the last webhook arrived and its attempt was recorded;
what the same process used idle over the same length of time (measured on the settled
stack first) is taken off; the rest is divided by the webhooks received. The load
generator runs in a process of its own and is not counted. When this machine cannot
keep up with 500/s, the predictions queue and the figure is the CPU per prediction at
the rate it did sustain (the notes give it): the same work, done as fast as it can.
A short unmeasured run goes first, so the JIT of Kafka's JVM and the services' first
uses are not in the idle cost. Also counted: PostgreSQL write transactions per
prediction (transaction ids used; the benchmark's own queries only read).
"""

from __future__ import annotations

import asyncio
import time

from bench.benchmarks.e2e import completion_rate
from bench.benchmarks.openloop import missing, open_loop, refused, tracked
from bench.context import Context
from bench.cpu import CpuTimes, Window, per_unit_ms, read
from bench.results import Goal, GoalKind, Result
from bench.statements import next_xid

RUNS = ((50.0, 20.0, "CPU per prediction, all five processes, at 50/s", 3.0),
        (500.0, 4.0, "CPU per prediction at 500/s", 1.5))
"""(predictions per second, seconds of sending, row name as in issue 11, goal in ms)."""
IDLE_SECONDS = 10.0
WARM_UP = (50.0, 5.0)
DRAIN = 150.0
PROCESSES = ("ingest", "executor", "dispatcher", "kafka", "postgres")


async def idle_rates(ctx: Context, pids: dict[str, int]) -> CpuTimes:
    """CPU seconds per second of each process on the settled stack, after a warm-up run."""
    await open_loop(ctx, *WARM_UP, drain=30.0)
    await ctx.settle()
    before, clock = read(pids), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    return Window(before, read(pids), time.monotonic() - clock).rates()


async def at_rate(ctx: Context, pids: dict[str, int], idle: CpuTimes, rate: float,
                  seconds: float, name: str, goal: float) -> list[Result]:
    """One open-loop run at `rate`, its CPU per prediction by process."""
    await ctx.settle()
    xid = await next_xid(ctx.db)
    before, clock = read(pids), time.monotonic()
    result = await open_loop(ctx, rate, seconds, drain=DRAIN)
    await ctx.settle()
    window = Window(before, read(pids), time.monotonic() - clock)
    writes = await next_xid(ctx.db) - xid
    lost, errors = missing(result), refused(result)
    received = len(tracked(result)) - lost
    if received <= 0:
        ctx.note("cpu", f"at {rate:g}/s no webhook arrived: not measured.")
        return [Result.not_measured(name, "ms", goal=Goal(GoalKind.VALUE_MAX, goal))]
    ms = per_unit_ms(window, idle, received)
    sustained = completion_rate(result)
    idle_ms = sum(idle.values()) * window.seconds * 1000 / received
    text = (f"at {rate:g}/s: {received} predictions over a {window.seconds:.1f} s window, "
            f"{sustained:.0f} webhooks/s sustained; idle cost taken off: {idle_ms:.3f} ms per "
            "prediction in all.")
    if sustained < 0.95 * rate:
        text += (f" This machine did not keep up with {rate:g}/s: the figure is CPU per "
                 f"prediction at the ~{sustained:.0f}/s it sustained, requests queued.")
    if lost or errors:
        text += (f" {errors} creates refused, {lost} webhooks missing (their CPU is in the "
                 "window, so the figure is high by that much).")
    ctx.note("cpu", text)
    return [
        Result.measure(name, "ms", ms["all"], goal=Goal(GoalKind.VALUE_MAX, goal)),
        *(Result.measure(f"CPU per prediction at {rate:g}/s: {process}", "ms", ms[process])
          for process in PROCESSES if process in ms),
        Result.measure(f"PostgreSQL write transactions per prediction at {rate:g}/s",
                       "transactions", writes / received),
    ]


async def run(ctx: Context) -> list[Result]:
    """The idle cost, then each rate."""
    pids = ctx.stack.processes()
    if set(pids) != set(PROCESSES):
        ctx.note("cpu", "not measured: the stack runs outside this benchmark, so its "
                        "processes can't be read.")
        return [Result.not_measured(name, "ms", goal=Goal(GoalKind.VALUE_MAX, goal))
                for _, _, name, goal in RUNS]
    idle = await idle_rates(ctx, pids)
    ctx.note("cpu", "idle CPU (ms per second): " + ", ".join(
        f"{name} {rate * 1000:.1f}" for name, rate in idle.items()) + ".")
    results: list[Result] = []
    for rate, seconds, name, goal in RUNS:
        results += await at_rate(ctx, pids, idle, rate, seconds, name, goal)
    return results

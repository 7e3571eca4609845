"""profiles: where each service's CPU goes under load. py-spy samples ingest, executor and
dispatcher (100/s each, without pausing them) while predictions arrive at 50/s for 30 s
(inferhook/digits, one `completed` webhook each, open loop), and PostgreSQL counts its
statements over the same window (pg_stat_statements, when loaded).

Writes bench/results/profile-<service>.txt (self time by package, hottest functions by
self and by total time) and profile-postgres.txt (statements by execution time, per
prediction); no rows. The samplers take CPU of their own on a small machine, so run the
`cpu` benchmark apart from this one (a full run does).

py-spy samples with `--gil`: only where a thread holds the GIL. Without it a sample counts
wherever a thread is not asleep, which includes time it is ready but waiting for a core;
on a busy shared machine that piled up where a process wakes another (socket writes,
epoll) and hid the Python work. With it, system calls and C code that lets the GIL go
(onnxruntime's run, socket I/O) are not in the profile: they are in the process's CPU
seconds from /proc over the same window, which each file's header gives.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bench import profile
from bench.benchmarks.openloop import missing, open_loop, tracked
from bench.context import Context
from bench.cpu import Window, read
from bench.results import Result
from bench.stack import STATE
from bench.statements import statements_available, top_statements, tracked_statements

RATE, SECONDS = 50.0, 30.0


@asynccontextmanager
async def sampled(ctx: Context) -> AsyncIterator[dict[str, subprocess.Popen[bytes]]]:
    """py-spy on every service for the block's length; their raw files are then summarized
    into ctx.files."""
    spies: dict[str, subprocess.Popen[bytes]] = {}
    pids = {name: service.pid for name, service in ctx.stack.services.items()}
    before = read(pids)
    for name, service in ctx.stack.services.items():
        spy = profile.start(service.pid, STATE / f"profile-{name}.raw", by_function=True,
                            gil=True)
        if spy is not None:
            spies[name] = spy
    try:
        yield spies
    finally:
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)
        for spy in spies.values():
            await asyncio.to_thread(spy.wait, 30)
    used = Window(before, read(pids), 1.0).used()
    for name in spies:
        raw = STATE / f"profile-{name}.raw"
        if raw.exists():
            ctx.files[f"profile-{name}.txt"] = (
                f"{name} under {RATE:g} predictions/s for {SECONDS:g} s (make bench "
                f"ONLY=profiles), py-spy --function --gil; /proc: {used[name]:.1f} "
                f"CPU-seconds in the window\n\n{profile.summarize(raw)}")


async def run(ctx: Context) -> list[Result]:
    """Sample the services and count PostgreSQL's statements during one open-loop run."""
    if not ctx.stack.services:
        ctx.note("profiles", "not taken: the stack runs outside this benchmark.")
        return []
    await ctx.settle()
    statements = await statements_available(ctx.db)
    async with sampled(ctx) as spies:
        if not spies:
            ctx.note("profiles", "py-spy is missing (make bench installs the bench extras).")
            return []
        async with tracked_statements(ctx.db, statements):
            result = await open_loop(ctx, RATE, SECONDS, drain=30.0)
            await ctx.settle()
            done = len(tracked(result)) - missing(result)
            if statements and done:
                ctx.files["profile-postgres.txt"] = (
                    f"PostgreSQL under {RATE:g} predictions/s for {SECONDS:g} s\n\n"
                    + await top_statements(ctx.db, done))
    if not statements:
        ctx.note("profiles", "pg_stat_statements is not loaded: no PostgreSQL profile.")
    ctx.note("profiles", f"{', '.join(sorted(spies))} sampled at {RATE:g}/s for {SECONDS:g} s: "
                         "bench/results/profile-*.txt.")
    return []

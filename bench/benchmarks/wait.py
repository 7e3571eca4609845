"""wait: 5,000 concurrent `GET /v1/predictions/{id}` with `Prefer: wait=60` held by ingest,
and the resident memory each costs, against the bare aiohttp server holding as many
(issue 3: flat memory per waiter; our bound: ≤ 64 KiB each).

The predictions waited on are pending rows written straight into Postgres for an owner
of their own (they never run, so every wait lasts). Memory is ingest's RSS once every
request is written and RSS has stopped moving, minus its RSS before.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from urllib.parse import urlsplit

import orjson

from bench.context import DIGITS, Context
from bench.results import Goal, GoalKind, Result
from inferhook.settings import REPO_ROOT

WAITERS = 5000
OWNER = "benchwait"
FILL_PENDING = """
INSERT INTO predictions (id, owner, model, status, input, webhook_events_filter, metrics, logs,
                         created_at, last_sequence, data_removed)
SELECT $1 || g, $2, $3, 'pending', '{}'::jsonb, '[]'::jsonb, '{}'::jsonb, '', now(), 0, false
FROM generate_series(1, $4) AS g
"""


async def steady_rss(ctx: Context, pid: int, timeout: float = 20.0) -> int:
    """RSS of pid once two samples 0.5 s apart differ by under 0.5% (or at timeout)."""
    last = ctx.rss(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = ctx.rss(pid)
        if abs(now - last) < 0.005 * last:
            return now
        last = now
    return last


async def bytes_per_waiter(ctx: Context, port: int, pid: int, key: str,
                           ids: str) -> tuple[float | None, int, int]:
    """Hold WAITERS waits on the server at port; return (bytes each, held, answered early)."""
    before = await steady_rss(ctx, pid)
    out = ctx.tmp / f"waiters-{port}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.tools.waiters", "--port", str(port), "--key", key,
        "--ids", ids, "--n", str(WAITERS), "--hold", "90", "--out", str(out), cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=90)
    held = int(line.split()[1]) if line.startswith(b"sent") else 0
    after = await steady_rss(ctx, pid)
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), timeout=30)
    report = orjson.loads(out.read_bytes())
    live = held - report["answered_early"]
    return ((after - before) / live if live > 0 else None), held, report["answered_early"]


async def run(ctx: Context) -> list[Result]:
    """Probe for Prefer: wait, then measure ingest and the bare server alike."""
    goal = Goal(GoalKind.VALUE_MAX, 65536)
    key = ctx.stack.cli("keys", "create", "--owner", OWNER).strip().splitlines()[-1]
    await ctx.db.execute(FILL_PENDING, "benchwait-", OWNER, DIGITS, WAITERS)
    ids = ctx.tmp / "wait-ids.txt"
    ids.write_text("\n".join(f"benchwait-{i}" for i in range(1, WAITERS + 1)) + "\n")
    _, _, headers = await ctx.get("benchwait-1", {"Authorization": f"Bearer {key}",
                                                  "Prefer": "wait=1"})
    ingest = ctx.stack.services.get("ingest")
    if "Preference-Applied" not in headers or ingest is None:
        ctx.note("wait", "ingest did not apply `Prefer: wait` (or runs outside this benchmark, "
                         "so its memory can't be read): not measured.")
        return [Result.not_measured("Prefer: wait memory per waiter", "B",
                                    baseline_name="bare aiohttp", goal=goal)]
    port = urlsplit(ctx.stack.base_url).port or 80
    ours, held, early = await bytes_per_waiter(ctx, port, ingest.pid, key, str(ids))
    async with ctx.bare_server(b"{}", b"{}") as (bare_url, bare_pid):
        bare, _, _ = await bytes_per_waiter(ctx, urlsplit(bare_url).port or 80, bare_pid, key,
                                            str(ids))
    if early:
        ctx.note("wait", f"{early} of {held} waits were answered before the prediction finished.")
    return [
        Result.measure("Prefer: wait waiters held", "connections", float(held - early),
                       goal=Goal(GoalKind.VALUE_MIN, WAITERS)),
        Result.measure("Prefer: wait memory per waiter", "B", ours,
                       baseline=("bare aiohttp holding the same", bare), goal=goal),
    ]

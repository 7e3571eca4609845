"""webhooks: signed deliveries per second from the outbox to a local receiver, one
dispatcher process (goal ≥ 4,000/s, issue 11) against a bare signing client pool; and
healthy-endpoint e2e p99 with a black-hole endpoint present against absent (goal ≤ 1.1x).

Throughput: N due rows are written straight into the outbox (a fixture) and the running
dispatcher delivers them to bench.tools.receiver; the rate runs from the first arrival to
the last. Isolation: 100 predictions/s open loop where every other one's webhook goes
to a second healthy path (absent) or to a server that accepts and never answers
(present); the figure is the p99, over the healthy half, of terminal event (the
prediction's completed_at) → webhook received.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from bench.benchmarks.openloop import first_attempt, missing, open_loop
from bench.context import Context
from bench.results import Goal, GoalKind, Result
from bench.stats import percentile_ms
from cli.infra.process import free_port, port_open, wait_until

DELIVERIES = 4000
ISOLATION_RATE, ISOLATION_SECONDS = 100.0, 12.0



async def fill_outbox(ctx: Context, tag: str, url: str, body: bytes, count: int) -> None:
    """Write `count` due deliveries to `url` straight into the outbox (a fixture). Columns
    the dispatcher work may add (endpoint, scheduled_at) are filled when present."""
    columns = {row["column_name"] for row in await ctx.db.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'webhook_deliveries'")}
    names = ["webhook_id", "prediction_id", "owner", "url", "event_type", "sequence", "body",
             "state", "attempts", "next_attempt_at", "created_at"]
    values = ["$1 || g", "$2 || g", "$3", "$4", "'inferhook.prediction.succeeded'", "2", "$5",
              "'pending'", "0", "now()", "now()"]
    params: list[object] = [f"msg_bench{tag}_", f"benchwh{tag}-", ctx.stack.owner, url, body,
                            count]
    if "endpoint" in columns:
        split = urlsplit(url)
        names.append("endpoint")
        values.append("$7")
        params.append(f"{split.scheme}://{split.hostname}:{split.port}")
    if "scheduled_at" in columns:
        names.append("scheduled_at")
        values.append("now()")
    await ctx.db.execute(
        f"INSERT INTO webhook_deliveries ({', '.join(names)}) "
        f"SELECT {', '.join(values)} FROM generate_series(1, $6::int) AS g", *params)


async def receive(ctx: Context, expect: int,
                  timeout: float) -> tuple[str, asyncio.Task[dict[str, Any]]]:
    """Start bench.tools.receiver; return its URL and a task finishing with its report."""
    port = free_port()
    task = asyncio.create_task(ctx.tool("receiver", "--port", str(port), "--expect", str(expect),
                                        "--timeout", f"{timeout:g}", timeout=timeout + 30))
    await asyncio.to_thread(wait_until, lambda: port_open(port), timeout=30, what="receiver",
                            log=None)
    return f"http://127.0.0.1:{port}/hook", task


async def delivery_rate(ctx: Context, body: bytes) -> tuple[float | None, int]:
    """Deliveries/s the stack's dispatcher achieves on DELIVERIES due outbox rows."""
    url, report = await receive(ctx, DELIVERIES, timeout=90)
    tag = uuid.uuid4().hex[:8]
    await fill_outbox(ctx, tag, url, body, DELIVERIES)
    got = await report
    if got["count"] < 2:
        return None, got["count"]
    return (got["count"] - 1) / (got["last"] - got["first"]), got["count"]


async def bare_rate(ctx: Context, body: bytes) -> float:
    """Signed POSTs/s a bare aiohttp client pool (100 at once) achieves on the same receiver."""
    url, report = await receive(ctx, DELIVERIES, timeout=90)
    body_file = ctx.tmp / "webhook-body.json"
    body_file.write_bytes(body)
    sent = await ctx.tool("blaster", "--url", url, "--n", str(DELIVERIES), "--body",
                          str(body_file), timeout=120)
    await report
    return float(sent["ok"] / sent["seconds"])


class BlackHole:
    """A server that accepts connections and never answers. `retire()` then answers 410
    Gone on the same port, so the dispatcher gives up there (documented semantics), and
    waits until no delivery to it is pending."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.append(writer)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[str]:
        """Hold every connection until the block ends; yields the webhook URL."""
        self.server = await asyncio.start_server(self._swallow, "127.0.0.1", self.port)
        try:
            yield self.url
        finally:
            self.server.close()
            for writer in self.held:
                writer.close()
            await self.server.wait_closed()

    async def retire(self, ctx: Context, timeout: float = 60.0) -> None:
        """Answer 410 and make pending deliveries due now, until none is pending."""

        async def gone(request: web.Request) -> web.Response:
            return web.Response(status=410)

        app = web.Application()
        app.router.add_post("/hook", gone)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pending = await ctx.db.fetchval(
                    "WITH due AS (UPDATE webhook_deliveries SET next_attempt_at = now() "
                    "WHERE url = $1 AND state = 'pending' RETURNING 1) SELECT count(*) FROM due",
                    self.url)
                if not pending:
                    return
                await asyncio.sleep(0.5)
            ctx.note("webhooks", f"deliveries to the black hole still pending after {timeout:.0f} s.")
        finally:
            await runner.cleanup()


async def isolation(ctx: Context) -> tuple[float | None, float | None]:
    """Healthy-half e2e p99 with the other half going to a healthy path, then a black hole."""
    await ctx.settle()
    absent = await open_loop(ctx, ISOLATION_RATE, ISOLATION_SECONDS, split="self")
    await ctx.settle()
    hole = BlackHole()
    async with hole.open() as url:
        present = await open_loop(ctx, ISOLATION_RATE, ISOLATION_SECONDS, split=url, drain=45)
    await hole.retire(ctx)
    if lost := missing(present):
        ctx.note("webhooks", f"with the black hole present, {lost} healthy webhooks did not "
                             "arrive within 45 s (left out of the p99).")
    return percentile_ms(first_attempt(present), 99), percentile_ms(first_attempt(absent), 99)


async def run(ctx: Context) -> list[Result]:
    """Delivery throughput, its bare baseline, then isolation from a black hole."""
    await ctx.settle()
    _, sample, _ = await ctx.create({"model": "inferhook/digits", "input": ctx.example()})
    body = orjson.dumps(sample)
    rate, delivered = await delivery_rate(ctx, body)
    if delivered < DELIVERIES:
        ctx.note("webhooks", f"only {delivered} of {DELIVERIES} outbox rows delivered in 90 s.")
    bare = await bare_rate(ctx, body)
    present, absent = await isolation(ctx)
    return [
        Result.measure("signed deliveries, one dispatcher process", "deliveries/s", rate,
                       baseline=("bare aiohttp signing client", bare),
                       goal=Goal(GoalKind.VALUE_MIN, 4000)),
        Result.measure("healthy webhook latency p99 with black hole", "ms", present,
                       baseline=("black hole absent", absent), goal=Goal(GoalKind.RATIO_MAX, 1.1)),
    ]


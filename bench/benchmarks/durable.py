"""durable: POST /v1/predictions at 64 connections (wrk) against the bare durable handler,
an aiohttp handler that writes the body to Kafka (acks=all, idempotent) before it answers,
with only Kafka and PostgreSQL running beside the server measured. Goal (issue 11):
throughput ≥ 0.3x the bare durable handler (durability's cost is in the baseline, so the
ratio is what our own work costs). Then the same ingest as `--workers 2` (SO_REUSEPORT),
against the one process: how creates scale with the cores a host has.

The stack's three services are stopped for it. The creates go to an ingest of their own,
on a fresh topic prefix and for an owner of their own, so they leave no backlog for the
executor and dispatcher; their rows are deleted afterwards, the services started again
and proven with a few predictions before the next benchmark.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

from bench.benchmarks.http import canned_bodies
from bench.context import Context
from bench.results import Goal, GoalKind, Result
from bench.stack import SERVICES
from bench.wrk import WrkRun, run_wrk
from cli.infra.process import free_port, port_open, terminate, wait_until
from inferhook.kafka import ensure_topics
from inferhook.settings import KafkaSettings

OWNER = "benchdurable"
NAME = "create throughput vs the bare durable handler (only Kafka and Postgres running)"
BARE = "bare durable aiohttp handler (Kafka acks=all, idempotent)"
GOAL = Goal(GoalKind.RATIO_MIN, 0.3)
WORKERS = "create throughput, ingest --workers 2 (only Kafka and Postgres running)"


async def ingest_alone(ctx: Context, prefix: str, key: str, workers: int = 1) -> WrkRun:
    """wrk against an ingest of its own (`workers` processes) on topic prefix `prefix`."""
    port = free_port()
    service = ctx.stack.spawn_service("ingest", "--workers", str(workers),
                                      log_name=f"ingest-{prefix}-{workers}",
                                      INFERHOOK_PORT=str(port),
                                      INFERHOOK_KAFKA_TOPIC_PREFIX=prefix)
    try:
        await asyncio.to_thread(wait_until, lambda: service.alive() and port_open(port),
                                timeout=60, what="ingest", log=service.log)
        return await run_wrk(f"http://127.0.0.1:{port}", "post", key, str(ctx.body_file()),
                             seconds=ctx.options.seconds, connections=ctx.options.connections)
    finally:
        await asyncio.to_thread(terminate, service.pid, timeout=10)


async def bare_durable(ctx: Context, prefix: str, key: str, create_body: bytes,
                       get_body: bytes) -> WrkRun:
    """wrk against the bare durable handler, writing to a topic of its own."""
    topic = f"{prefix}.bare"
    await ensure_topics(KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap, topic_prefix=prefix),
                        [topic])
    async with ctx.bare_server(create_body, get_body, kafka_topic=topic) as (url, _):
        return await run_wrk(url, "post", key, str(ctx.body_file()),
                             seconds=ctx.options.seconds, connections=ctx.options.connections)


async def restart(ctx: Context) -> None:
    """Start the stack's services again and wait until a few predictions go through."""
    for name in SERVICES:
        ctx.stack.restart_service(name)
    port = urlsplit(ctx.stack.base_url).port or 80
    ingest = ctx.stack.services["ingest"]
    await asyncio.to_thread(wait_until, lambda: ingest.alive() and port_open(port), timeout=60,
                            what="ingest", log=ingest.log)
    await ctx.warm_up(stuck_after=30.0)


async def run(ctx: Context) -> list[Result]:
    """A real create's answer to copy; the services stopped; the bare durable handler,
    then our ingest alone; the services back."""
    if not ctx.stack.services:
        ctx.note("durable", "not measured: the stack runs outside this benchmark.")
        return [Result.not_measured(NAME, "req/s", baseline_name=BARE, goal=GOAL)]
    prefix = f"{ctx.stack.topic_prefix}c{uuid.uuid4().hex[:6]}"
    key = ctx.stack.cli("keys", "create", "--owner", OWNER).strip().splitlines()[-1]
    create_body, get_body = await canned_bodies(ctx)
    for name in SERVICES:
        await asyncio.to_thread(ctx.stack.stop_service, name)
    try:
        bare = await bare_durable(ctx, prefix, key, create_body, get_body)
        ours = await ingest_alone(ctx, prefix, key)
        two = await ingest_alone(ctx, prefix, key, workers=2)
    finally:
        await ctx.db.execute("DELETE FROM predictions WHERE owner = $1", OWNER)
        await restart(ctx)
    if ours.errors:
        ctx.note("durable", f"{ours.errors} of {ours.requests} creates failed (non-2xx or socket).")
    return [
        Result.measure(NAME, "req/s", ours.per_second, baseline=(BARE, bare.per_second),
                       goal=GOAL),
        Result.measure(WORKERS, "req/s", two.per_second, baseline=("one ingest process",
                                                                    ours.per_second)),
        Result.measure("create p50 (only Kafka and Postgres running)", "ms", ours.p(50),
                       baseline=(BARE, bare.p(50))),
        Result.measure("create p99 (only Kafka and Postgres running)", "ms", ours.p(99),
                       baseline=(BARE, bare.p(99))),
    ]

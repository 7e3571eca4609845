"""fanout: deliveries/s when each event fans out to 10 account webhook endpoints (issue 13),
against the same number of plain outbox rows delivered by the same dispatcher.

Fan-out: 10 endpoints of the bench owner subscribe to `inferhook.prediction.succeeded`;
PREDICTIONS lifecycles (created → started → succeeded) are written straight to the stack's
events topic, the running dispatcher projects them, fans each terminal event out to the 10
endpoints and delivers them to bench.tools.receiver; the rate runs from the first arrival
to the last. Baseline: as many due rows written straight into the outbox (webhooks'
fixture), no projection and no fan-out. The endpoints are deleted afterwards.
"""

from __future__ import annotations

import uuid

import orjson

from bench.benchmarks.webhooks import fill_outbox, receive
from bench.context import DIGITS, Context
from bench.events import lifecycle, produce
from bench.results import Result
from inferhook.settings import KafkaSettings
from schemas.topics import Topics

ENDPOINTS = 10
PREDICTIONS = 400
DELIVERIES = ENDPOINTS * PREDICTIONS
OUTPUT = {"digit": 7, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}


async def _endpoints(ctx: Context, url: str) -> list[str]:
    ids = []
    for _ in range(ENDPOINTS):
        async with ctx.http.post(f"{ctx.stack.base_url}/v1/webhooks/endpoints", headers=ctx.auth,
                                 json={"url": url,
                                       "event_types": ["inferhook.prediction.succeeded"]}
                                 ) as response:
            if response.status != 201:
                raise RuntimeError(f"creating an endpoint: {response.status} "
                                   f"{await response.text()}")
            ids.append((await response.json())["id"])
    return ids


async def fanout_rate(ctx: Context) -> tuple[float | None, int]:
    """Deliveries/s of PREDICTIONS terminal events fanned out to ENDPOINTS endpoints."""
    url, report = await receive(ctx, DELIVERIES, timeout=120)
    ids = await _endpoints(ctx, url)
    try:
        kafka = KafkaSettings(bootstrap=ctx.stack.kafka_bootstrap,
                              topic_prefix=ctx.stack.topic_prefix)
        await produce(kafka, Topics(ctx.stack.topic_prefix).events,
                      lifecycle(ctx.stack.owner, DIGITS, ctx.example(), OUTPUT, PREDICTIONS))
        got = await report
    finally:
        for endpoint_id in ids:
            async with ctx.http.delete(f"{ctx.stack.base_url}/v1/webhooks/endpoints/{endpoint_id}",
                                       headers=ctx.auth) as response:
                await response.read()
    if got["count"] < 2:
        return None, got["count"]
    return (got["count"] - 1) / (got["last"] - got["first"]), got["count"]


async def plain_rate(ctx: Context, body: bytes) -> float | None:
    """Deliveries/s of DELIVERIES plain due outbox rows."""
    url, report = await receive(ctx, DELIVERIES, timeout=120)
    await fill_outbox(ctx, uuid.uuid4().hex[:8], url, body, DELIVERIES)
    got = await report
    if got["count"] < 2:
        return None
    return float((got["count"] - 1) / (got["last"] - got["first"]))


async def run(ctx: Context) -> list[Result]:
    """Fan-out delivery rate, then the plain outbox rate on the same stack."""
    await ctx.settle()
    rate, delivered = await fanout_rate(ctx)
    if delivered < DELIVERIES:
        ctx.note("fanout", f"only {delivered} of {DELIVERIES} fanned-out deliveries arrived.")
    await ctx.settle()
    _, sample, _ = await ctx.create({"model": DIGITS, "input": ctx.example()})
    plain = await plain_rate(ctx, orjson.dumps(sample))
    return [Result.measure(f"deliveries, one event fanned out to {ENDPOINTS} endpoints",
                           "deliveries/s", rate,
                           baseline=("plain outbox rows, no fan-out", plain))]

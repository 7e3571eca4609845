"""Health and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from inferhook.resilience import Dependency, mark
from ingest.openapi import operation
from ingest.state import ENGINE, PRODUCER
from schemas.api import Health
from store import server

routes = web.RouteTableDef()

CHECK_TIMEOUT = 2.0
"""Seconds a dependency has to answer a readiness check."""


@routes.get("/healthz")
@operation("Liveness: the process is up", responses={200: Health}, public=True, tags=("meta",))
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.Response(text=Health(status="ok").model_dump_json(), content_type="application/json")


async def check_dependencies(app: web.Application) -> dict[str, str]:
    """`ok` or `unavailable: <why>` for Kafka and Postgres, checked side by side within
    CHECK_TIMEOUT; the `inferhook_dependency_up` gauge is set from the answers."""

    async def postgres() -> None:
        async with app[ENGINE].connect() as conn:
            await server.ping(conn)

    async def kafka() -> None:
        producer = app[PRODUCER]  # ingest.app.LateProducer
        if not producer.started:
            raise ConnectionError("not connected to Kafka yet")
        # Kafka is up while any broker answers: one broker of a cluster down is a leader
        # election, not an outage. ready() connects (or finds the connection alive), so a
        # dead broker is not taken for alive on cached metadata.
        client = producer.client
        nodes = [broker.nodeId for broker in client.cluster.brokers()]
        answers = await asyncio.gather(*(client.ready(node) for node in nodes),
                                       return_exceptions=True)
        if True not in answers:
            raise ConnectionError("no broker answered")

    async def check(dependency: Dependency, probe: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT)
        except Exception as exc:  # readiness reports every failure, whatever its type
            mark(dependency, up=False)
            return f"unavailable: {type(exc).__name__}"
        mark(dependency, up=True)
        return "ok"

    answers = await asyncio.gather(check(Dependency.POSTGRES, postgres),
                                   check(Dependency.KAFKA, kafka))
    return {"postgres": answers[0], "kafka": answers[1]}


@routes.get("/readyz")
@operation("Readiness: Kafka and Postgres answer", responses={200: Health, 503: Health}, public=True,
           tags=("meta",))
async def readyz(request: web.Request) -> web.Response:
    """200 only when Kafka and Postgres both answer within two seconds; the body says which
    one does not (`checks`)."""
    checks = await check_dependencies(request.app)
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return web.Response(text=body.model_dump_json(), content_type="application/json",
                        status=200 if ready else 503)

"""Health and readiness."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from ingest.openapi import operation
from ingest.state import ENGINE, PRODUCER, TOPICS
from schemas.api import Health

routes = web.RouteTableDef()


@routes.get("/healthz")
@operation("Liveness: the process is up", responses={200: Health}, public=True, tags=("meta",))
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.Response(text=Health(status="ok").model_dump_json(), content_type="application/json")


@routes.get("/readyz")
@operation("Readiness: Kafka and Postgres answer", responses={200: Health, 503: Health}, public=True,
           tags=("meta",))
async def readyz(request: web.Request) -> web.Response:
    """200 only when Kafka and Postgres both answer within two seconds."""
    checks: dict[str, str] = {}

    async def postgres() -> None:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def kafka() -> None:
        partitions = await request.app[PRODUCER].partitions_for(request.app[TOPICS].events)
        if not partitions:
            raise ConnectionError("events topic has no partitions")

    for name, check in (("postgres", postgres), ("kafka", kafka)):
        try:
            await asyncio.wait_for(check(), timeout=2.0)
            checks[name] = "ok"
        except Exception as exc:  # readiness reports every failure, whatever its type
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return web.Response(text=body.model_dump_json(), content_type="application/json",
                        status=200 if ready else 503)

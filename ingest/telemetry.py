"""Ingest's metrics, traces and log context: one middleware around every request, and /metrics.

The middleware is the outermost one, so it sees the status the client gets (errors
included, after `problems` shaped them). Per request it costs a span, one histogram
observation and a context variable: microseconds.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry.trace import SpanKind

from inferhook import tracing
from inferhook.logs import PREDICTION_ID
from inferhook.metrics import HTTP_REQUESTS, metrics_handler
from ingest.openapi import operation

routes = web.RouteTableDef()

UNMATCHED = "unmatched"
"""The `route` label of requests no route matched (404/405), so raw URLs never become labels."""
CLIENT_GONE = 499
"""The `status` label of requests whose client hung up before the answer."""


def route_of(request: web.Request) -> str:
    """The canonical path of the route that matched (`/v1/predictions/{prediction_id}`)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time and count the request, run it in a server span, bind its prediction id for logs."""
    route = route_of(request)
    clock = time.perf_counter()
    status = 500
    token = PREDICTION_ID.set(request.match_info.get("prediction_id"))
    try:
        with tracing.tracer().start_as_current_span(
                f"{request.method} {route}", context=tracing.from_http(request.headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": request.method, "http.route": route}) as span:
            response = await handler(request)
            status = response.status
            span.set_attribute("http.response.status_code", status)
            if (prediction_id := PREDICTION_ID.get()) is not None:
                span.set_attribute("inferhook.prediction_id", prediction_id)
            return response
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        PREDICTION_ID.reset(token)
        HTTP_REQUESTS.labels(request.method, route, str(status)).observe(time.perf_counter() - clock)


@routes.get("/metrics")
@operation("Prometheus metrics of this ingest process", responses={200: None}, public=True,
           media_type="text/plain", tags=("meta",),
           description="The Prometheus text format. Executors and dispatchers serve the same on "
                       "their own port (INFERHOOK_METRICS_PORT).")
async def metrics(request: web.Request) -> web.Response:
    """Answer a Prometheus scrape."""
    return await metrics_handler(request)

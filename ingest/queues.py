"""GET /v1/queues: pending and started predictions per served model and priority, from Postgres.

The counts are the read model's view: a prediction is `pending` from its 201 until the
dispatcher has projected its `started` event, so they lag the executors by the projection
delay (milliseconds in practice). They cover every owner: a queue is shared by all callers of
a model, and only counts are shown. Kafka consumer lag, the executors' own view of the
backlog, is a metric (/metrics), not part of this answer.
"""

from __future__ import annotations

from aiohttp import web

from ingest.openapi import operation
from ingest.state import CATALOG, ENGINE
from schemas.priority import Priority
from schemas.queues import PriorityDepth, QueueDepth, QueueList
from store import predictions

routes = web.RouteTableDef()

@routes.get("/v1/queues")
@operation("Queue depth per model", responses={200: QueueList}, tags=("models",),
           description=__doc__ or "")
async def list_queues(request: web.Request) -> web.Response:
    """Each served model with its counts of pending and started predictions (all owners)."""
    async with request.app[ENGINE].connect() as conn:
        counts = await predictions.open_counts(conn)
    body = QueueList(results=[_depth(name, counts) for name in request.app[CATALOG]])
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def _depth(model: str, counts: dict[tuple[str, str, str], int]) -> QueueDepth:
    by_priority = [PriorityDepth(priority=p, pending=counts.get((model, p.value, "pending"), 0),
                                 started=counts.get((model, p.value, "started"), 0))
                   for p in Priority]
    return QueueDepth(model=model, pending=sum(d.pending for d in by_priority),
                      started=sum(d.started for d in by_priority), priorities=by_priority)

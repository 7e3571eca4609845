"""GET /v1/executors: the executors serving each model now and its backlog, from Kafka.

Read from the executors consumer group (inferhook.groups): an executor counts once it has
joined the group for the model's request topic, the backlog is what the group has not
committed (waiting or running). This is what the supervisor (`inferhook supervise`, and
`inferhook up`) scales on, so a model scaled to zero shows 0 executors, and 1 again shortly
after its next request (a member joining is counted once the rebalance it causes is
over). Counts only: the answer is the same for every caller.
"""

from __future__ import annotations

from aiohttp import web
from aiokafka.errors import KafkaError

from inferhook.groups import GroupWatch
from ingest.errors import ServiceUnavailable
from ingest.openapi import operation
from ingest.state import CATALOG, SETTINGS
from schemas.executors import ExecutorList, ModelExecutors

routes = web.RouteTableDef()


@routes.get("/v1/executors")
@operation("Executors and backlog per model", responses={200: ExecutorList}, tags=("models",),
           description=__doc__ or "")
async def list_executors(request: web.Request) -> web.Response:
    """Each served model with its executors and backlog (503 when Kafka does not answer)."""
    catalog = request.app[CATALOG]
    watch = GroupWatch(request.app[SETTINGS].kafka)
    try:
        await watch.start()
        loads = await watch.read(list(catalog))
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka did not answer: {exc}") from exc
    finally:
        await watch.close()
    body = ExecutorList(results=[ModelExecutors(model=load.model, executors=load.executors,
                                                backlog=load.backlog) for load in loads.values()])
    return web.Response(text=body.model_dump_json(), content_type="application/json")

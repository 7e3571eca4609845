"""Routes under /v1/async/<kind>: OpenAI-style requests run as predictions, polled as jobs.

`POST /v1/async/<kind>` takes the body of OpenAI's endpoint of that kind (multipart where
OpenAI's takes a file), maps it to the model's input (ingest.adapters) and creates one
ordinary prediction through the path every create takes (headers, idempotency, Kafka,
read-your-writes); it answers 202 with the job. `GET /v1/async/<kind>/{job_id}` answers
202 while the job is pending or processing, 200 with its result or error once done, and
404 "Job not found or expired" for another owner's id, another kind's id or an expired
one. The id is the prediction's: webhooks, events, SSE and Prefer: wait all work on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, create_model

from inferhook.catalog import CatalogEntry
from ingest import headers
from ingest.adapters import ADAPTERS
from ingest.adapters.base import Adapter
from ingest.body import parse, read_json
from ingest.create import validate
from ingest.errors import BadRequest, NotFound, Unprocessable
from ingest.forms import read_form
from ingest.jobs import NOT_FOUND, job_body, job_of, visible, wants_files
from ingest.openapi import operation
from ingest.predictions import submit
from ingest.reads import load_prediction
from ingest.state import CATALOG, ENGINE, FILES, OWNER, SETTINGS
from ingest.waiting import preference_applied, wait_terminal, wanted_wait
from schemas.api import AsyncJob, PredictionCreate, ProblemItem
from schemas.events import utcnow
from schemas.tables import PredictionRow
from schemas.tasks import TaskKind

routes = web.RouteTableDef()

TTL_HEADERS = ("Result-TTL", headers.RESULT_TTL_ALIAS)
SUBMIT_HEADERS = (headers.PREFER_DOC, headers.CANCEL_AFTER_DOC, headers.RESULT_TTL_DOC,
                  headers.RESULT_TTL_ALIAS_DOC, headers.IDEMPOTENCY_KEY_DOC)
JOB_HEADERS = {"Preference-Applied": "Present when it waited"}


def serving(catalog: dict[str, CatalogEntry], kind: TaskKind) -> list[str]:
    """Names of the models whose manifest lists `kind`."""
    return [name for name, entry in catalog.items() if kind in entry.manifest.kinds]


def model_for(catalog: dict[str, CatalogEntry], name: str, kind: TaskKind) -> CatalogEntry:
    """The named model if it serves `kind`: 404 when it does not exist, 400 naming the kinds
    it serves when it does not serve this one."""
    entry = catalog.get(name)
    if entry is None:
        raise NotFound(f"model {name!r} does not exist; {kind} is served by "
                       f"{', '.join(serving(catalog, kind))}")
    if kind not in entry.manifest.kinds:
        kinds = ", ".join(entry.manifest.kinds)
        msg = (f"{name} does not serve {kind}; it serves {kinds}" if kinds else
               f"{name} does not serve {kind}; it serves no task kind (use POST /v1/predictions)")
        raise BadRequest(msg, [ProblemItem(loc=["body", "model"], msg=msg)])
    return entry


def relocated(error: Unprocessable, adapter: Adapter[Any]) -> Unprocessable:
    """The model-input problems of `error` at the body fields they came from."""
    items = [ProblemItem(loc=["body", *adapter.body_loc(tuple(item.loc[2:]))], msg=item.msg)
             if item.loc[:2] == ["body", "input"] else item for item in error.errors]
    return Unprocessable(error.detail.replace("`input`", "the request"), items)


async def job_response(request: web.Request, row: PredictionRow, adapter: Adapter[Any],
                       wait: int | None) -> web.Response:
    """The job: 200 once completed or failed, 202 before."""
    files: dict[str, bytes] = {}
    if wanted := wants_files(row, adapter):
        async with request.app[ENGINE].connect() as conn:
            found = await request.app[FILES].get(conn, wanted, owner=row.owner, content=True)
        files = {file_id: stored.content or b"" for file_id, stored in found.items()}
    job = job_of(row, adapter, files)
    response = web.Response(status=200 if job.status.is_final() else 202,
                            body=job_body(job),
                            content_type="application/json")
    preference_applied(response, wait)
    return response


async def submit_task(request: web.Request, kind: TaskKind) -> web.Response:
    """Create the prediction a kind's request stands for; answer with its job."""
    app, adapter = request.app, ADAPTERS[kind]
    catalog = app[CATALOG]
    if not serving(catalog, kind):
        raise NotFound(f"no model serves {kind}")
    limit = app[SETTINGS].max_body_bytes
    data = await (read_form(request, limit) if kind.multipart else read_json(request, limit))
    body = parse(adapter.body, data)
    entry = model_for(catalog, body.model, kind)
    converted = adapter.request(body, entry)
    create = PredictionCreate(model=entry.name, input=converted.input, webhook=body.webhook,
                              webhook_events_filter=body.webhook_events_filter,
                              priority=body.priority)
    try:
        model_input = await validate(app, create, request[OWNER])
    except Unprocessable as exc:
        raise relocated(exc, adapter) from exc
    submitted = await submit(request, create, model_input, kind=kind,
                             task_options=converted.options, ttl_headers=TTL_HEADERS)
    response = await job_response(request, submitted.row, adapter, submitted.wait)
    response.headers["Location"] = f"{app[SETTINGS].base_url}/v1/async/{kind}/{submitted.row.id}"
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def poll_task(request: web.Request, kind: TaskKind) -> web.Response:
    """The caller's job of this kind; 404 when it is not one or has expired."""
    app = request.app
    row = await load_prediction(app[ENGINE], request.match_info["job_id"], request[OWNER])
    if row is None or not visible(row, kind, utcnow()):
        raise NotFound(NOT_FOUND)
    wait = wanted_wait(request)
    if wait is not None:
        row = await wait_terminal(app, row, wait)
    return await job_response(request, row, ADAPTERS[kind], wait)


def job_model(adapter: Adapter[Any]) -> type[BaseModel]:
    """AsyncJob with `result` typed as the kind's result, for the OpenAPI document."""
    if adapter.result_model is None:
        return AsyncJob
    name = "".join(part.capitalize() for part in adapter.kind.slug.split("_")) + "Job"
    result: Any = adapter.result_model | None
    model: type[BaseModel] = create_model(name, __base__=AsyncJob, result=(result, None))
    return model


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _register(kind: TaskKind) -> None:
    adapter, path = ADAPTERS[kind], f"/v1/async/{kind}"
    job = job_model(adapter)

    async def submit_handler(request: web.Request) -> web.Response:
        return await submit_task(request, kind)

    async def poll_handler(request: web.Request) -> web.Response:
        return await poll_task(request, kind)

    submit_handler.__name__ = submit_handler.__qualname__ = f"submit_{kind.slug}"
    poll_handler.__name__ = poll_handler.__qualname__ = f"poll_{kind.slug}"
    media = "multipart/form-data" if kind.multipart else "application/json"
    routes.post(path)(operation(
        f"Submit a {kind} job", body=None if kind.multipart else adapter.body,
        form=adapter.body if kind.multipart else None,
        responses={202: job, 200: job}, headers=SUBMIT_HEADERS,
        response_headers={202: {"Location": "URL of the job"}, 200: JOB_HEADERS},
        errors=(404, 409), tags=("async",), creates="job_id",
        description=f"The body of OpenAI's {kind} endpoint ({media}); 202 with the pending "
                    "job once its prediction is durable in Kafka (200 when Prefer: wait saw it "
                    f"finish). 404 when no model serves {kind}; 400 when the model does not.",
    )(submit_handler))
    routes.get(f"{path}/{{job_id}}")(operation(
        f"Poll a {kind} job", responses={202: job, 200: job}, headers=(headers.PREFER_DOC,),
        response_headers={200: JOB_HEADERS, 202: JOB_HEADERS}, tags=("async",),
        description="202 while pending or processing; 200 with `result` or `error` once "
                    "completed or failed; 404 `Job not found or expired` otherwise.",
    )(poll_handler))


for _kind in TaskKind:
    _register(_kind)

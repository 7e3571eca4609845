"""Routes under /v1/predictions (and /v1/models/…/predictions): create, read, list."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import uuid_utils
from aiohttp import web

from inferhook.logs import bind_prediction
from inferhook.metrics import PREDICTIONS_CREATED
from ingest import headers
from ingest.body import parse, parse_query, read_json
from ingest.create import NewPrediction, accept, resume, validate
from ingest.errors import NotFound
from ingest.idempotency import Reservation, body_hash, reserve_or_replay
from ingest.openapi import operation
from ingest.position import shown
from ingest.reads import encode_cursor, list_predictions, load_prediction
from ingest.state import API_KEY, CATALOG, ENGINE, FINISHED, OWNER, SETTINGS
from ingest.waiting import preference_applied, wait_terminal, wanted_wait
from schemas.api import ListQuery, Prediction, PredictionCreate, PredictionList, PredictionRequest
from schemas.tables import PredictionRow
from schemas.tasks import TaskKind

routes = web.RouteTableDef()
T = TypeVar("T")

CREATE_HEADERS = (headers.PREFER_DOC, headers.CANCEL_AFTER_DOC, headers.RESULT_TTL_DOC,
                  headers.IDEMPOTENCY_KEY_DOC)
CREATE_RESPONSE_HEADERS = {
    201: {"Location": "URL of the new prediction", "Preference-Applied": "Present when it waited"},
    200: {"Idempotent-Replayed": "`true`: the prediction this Idempotency-Key made before",
          "Preference-Applied": "Present when it waited"},
}
CREATE_DESCRIPTION = (
    "201 with the prediction in `pending` once it is durable in Kafka. With `Prefer: wait` the "
    "answer comes when it is terminal or the wait is over. A repeated `Idempotency-Key` with "
    "the same body answers 200 with the original prediction (`Idempotent-Replayed: true`). "
    "`priority` orders the model's queue (interactive, default, batch); past the model's queue "
    "cap or the account's cap on predictions in flight the answer is 429 and nothing is written.")


def prediction_response(row: PredictionRow, request: web.Request, status: int = 200) -> web.Response:
    """The prediction as JSON."""
    body = row.to_api(request.app[SETTINGS].base_url).model_dump_json()
    return web.Response(status=status, text=body, content_type="application/json")


@dataclass(frozen=True)
class Submitted:
    """What a create came to: the prediction, whether it was made before, how long it waited."""

    row: PredictionRow
    replayed: bool
    """True when an Idempotency-Key gave back the prediction it made before."""
    wait: int | None
    """Seconds `Prefer: wait` asked for (the row is as it stood after waiting), or None."""


async def submit(request: web.Request, body: PredictionCreate, model_input: dict[str, Any] | None,
                 *, kind: TaskKind | None = None, task_options: dict[str, Any] | None = None,
                 ttl_headers: tuple[str, ...] = ("Result-TTL",)) -> Submitted:
    """Accept a create `validate` passed (`model_input` is what it returned) honouring its
    headers (Cancel-After, the first of `ttl_headers` present, Idempotency-Key, Prefer:
    wait): the one path every create takes."""
    app, owner = request.app, request[OWNER]
    ttl = next((request.headers[name] for name in ttl_headers if name in request.headers), None)
    new = NewPrediction(owner=owner, body=body,
                        cancel_after=headers.cancel_after(request.headers.get("Cancel-After")),
                        result_ttl_seconds=headers.result_ttl(ttl), model_input=model_input,
                        kind=kind, task_options=task_options,
                        api_key_id=request[API_KEY].key_hash)
    key = headers.idempotency_key(request.headers.get("Idempotency-Key"))
    wait = wanted_wait(request)
    prediction_id = str(uuid_utils.uuid7())
    bind_prediction(prediction_id)  # ingest's telemetry middleware resets it after the request
    reservation = None if key is None else Reservation(owner, key, prediction_id)
    replayed = None if reservation is None else await reserve_or_replay(
        app[ENGINE], reservation, body_hash(body, kind, task_options),
        app[SETTINGS].api.idempotency_hours)
    if replayed is None:
        row = await _shielded(accept(app, new, prediction_id, reservation))
        PREDICTIONS_CREATED.labels(body.model, body.priority.value).inc()
    else:
        row = replayed.row
        bind_prediction(row.id)
        if replayed.interrupted and reservation is not None:
            await _shielded(resume(app, row, Reservation(owner, reservation.key, row.id)))
    if wait is not None:
        row = await wait_terminal(app, row, wait)
    return Submitted(row, replayed is not None, wait)


async def create(request: web.Request, body: PredictionCreate) -> web.Response:
    """Shared by both create routes: validate, accept, answer with the prediction."""
    model_input = await validate(request.app, body, request[OWNER])
    submitted = await submit(request, body, model_input)
    prediction = submitted.row.to_api(request.app[SETTINGS].base_url)
    response = web.Response(status=200 if submitted.replayed else 201,
                            text=prediction.model_dump_json(), content_type="application/json")
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        response.headers["Location"] = prediction.urls.get
    preference_applied(response, submitted.wait)
    return response


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end even if the client hangs up (a create must not stop half-way
    once Kafka has it); its errors are logged where they happen, so a left client's are
    only retrieved, not reported again."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(task)


@routes.post("/v1/predictions")
@operation("Create a prediction", body=PredictionCreate, responses={201: Prediction, 200: Prediction},
           headers=CREATE_HEADERS, response_headers=CREATE_RESPONSE_HEADERS, errors=(409,),
           tags=("predictions",), description=CREATE_DESCRIPTION, creates="prediction_id")
async def create_prediction(request: web.Request) -> web.Response:
    """Accept a prediction: 201 only once its `created` event is durable in Kafka."""
    data = await read_json(request, request.app[SETTINGS].max_body_bytes)
    return await create(request, parse(PredictionCreate, data))


@routes.post("/v1/models/{owner}/{name}/predictions")
@operation("Create a prediction of this model", body=PredictionRequest,
           responses={201: Prediction, 200: Prediction}, headers=CREATE_HEADERS,
           response_headers=CREATE_RESPONSE_HEADERS, errors=(409,), tags=("predictions",),
           description=CREATE_DESCRIPTION, creates="prediction_id")
async def create_model_prediction(request: web.Request) -> web.Response:
    """The same as POST /v1/predictions with the model named in the path."""
    data = await read_json(request, request.app[SETTINGS].max_body_bytes)
    model = f"{request.match_info['owner']}/{request.match_info['name']}"
    fields = parse(PredictionRequest, data)
    if model not in request.app[CATALOG]:
        raise NotFound(f"model {model!r} does not exist; GET /v1/models lists them")
    return await create(request, PredictionCreate(model=model, **fields.model_dump()))


@routes.get("/v1/predictions/{prediction_id}")
@operation("Get a prediction", responses={200: Prediction}, headers=(headers.PREFER_DOC,),
           response_headers={200: {"Preference-Applied": "Present when it waited"}},
           tags=("predictions",))
async def get_prediction(request: web.Request) -> web.Response:
    """One prediction of the caller's; 404 for unknown ids and for other owners' ids alike."""
    app, prediction_id, owner = request.app, request.match_info["prediction_id"], request[OWNER]
    wait = wanted_wait(request)
    finished = app[FINISHED].get(prediction_id, owner)
    if finished is not None:  # terminal: waiting would change nothing
        response = web.Response(body=finished, content_type="application/json")
        preference_applied(response, wait)
        return response
    row = await load_prediction(app[ENGINE], prediction_id, owner)
    if row is None:
        raise NotFound("no such prediction")
    if wait is not None:
        row = await wait_terminal(app, row, wait)
    prediction = await shown(app, row, row.to_api(app[SETTINGS].base_url))
    body = prediction.model_dump_json().encode()
    app[FINISHED].put(row, body)
    response = web.Response(body=body, content_type="application/json")
    preference_applied(response, wait)
    return response


@routes.get("/v1/predictions")
@operation("List predictions, newest first", query=ListQuery, responses={200: PredictionList},
           tags=("predictions",))
async def list_all(request: web.Request) -> web.Response:
    """A page of the caller's predictions; `next` is the URL of the following page."""
    query = parse_query(ListQuery, request.query)
    rows, more = await list_predictions(request.app[ENGINE], request[OWNER], query)
    base_url = request.app[SETTINGS].base_url
    following = None
    if more and rows:
        params = {k: v for k, v in request.query.items() if k != "cursor"}
        params["cursor"] = encode_cursor(rows[-1])
        following = f"{base_url}/v1/predictions?{urlencode(params)}"
    page = PredictionList(results=[r.to_api(base_url) for r in rows], next=following)
    return web.Response(text=page.model_dump_json(), content_type="application/json")

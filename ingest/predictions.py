"""Routes under /v1/predictions: create and read."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import uuid_utils
from aiohttp import web
from aiokafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from inferhook.kafka import publish
from inferhook.ssrf import UnsafeWebhookURL, check_url
from ingest.body import check_schema, parse, read_json
from ingest.errors import NotFound, ServiceUnavailable, Unprocessable
from ingest.state import CATALOG, ENGINE, OWNER, PRODUCER, SETTINGS, TOPICS
from schemas.api import PredictionCreate, ProblemItem
from schemas.events import CREATED_SEQUENCE, Created, EventType, PredictionEvent, utcnow
from schemas.status import Status
from schemas.tables import PredictionRow

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SOURCE = f"inferhook/ingest/{socket.gethostname()}/{os.getpid()}"


def json_response(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json")


@routes.post("/v1/predictions")
async def create_prediction(request: web.Request) -> web.Response:
    """Accept a prediction: 201 only once its `created` event is durable in Kafka."""
    app, owner = request.app, request[OWNER]
    settings = app[SETTINGS]
    body = parse(PredictionCreate, await read_json(request, settings.max_body_bytes))
    entry = app[CATALOG].get(body.model)
    if entry is None:
        raise NotFound(f"model {body.model!r} does not exist; GET /v1/models lists them")
    check_schema(entry.validator, body.input, "input")
    if body.webhook is not None:
        try:
            await check_url(body.webhook, settings.webhook.allow_nets)
        except UnsafeWebhookURL as exc:
            raise Unprocessable(str(exc), [ProblemItem(loc=["body", "webhook"], msg=str(exc))]) from exc

    prediction_id = str(uuid_utils.uuid7())
    created = Created(owner=owner, model=body.model, input=body.input, webhook=body.webhook,
                      webhook_events_filter=[e.value for e in body.webhook_events_filter],
                      created_at=utcnow())
    event = PredictionEvent(id=f"{prediction_id}-{CREATED_SEQUENCE}", source=SOURCE,
                            type=EventType.CREATED, time=created.created_at,
                            subject=prediction_id, sequence=CREATED_SEQUENCE, data=created)
    topics, producer = app[TOPICS], app[PRODUCER]
    try:
        await asyncio.gather(publish(producer, topics.events, event),
                             publish(producer, topics.requests(body.model), event))
    except KafkaError as exc:
        log.warning("could not enqueue prediction %s: %r", prediction_id, exc)
        raise ServiceUnavailable("Kafka did not accept the prediction; nothing was created, "
                                 "retry") from exc

    row = PredictionRow(id=prediction_id, owner=owner, model=body.model,
                        status=Status.PENDING.value, input=body.input, webhook=body.webhook,
                        webhook_events_filter=created.webhook_events_filter,
                        created_at=created.created_at, last_sequence=CREATED_SEQUENCE)
    try:
        # Read-your-writes: project our own `created` event now, so a GET right after the
        # 201 finds it on any replica. The dispatcher's projection of it is then a no-op.
        async with app[ENGINE].begin() as conn:
            await conn.execute(insert(PredictionRow).values(row.model_dump())
                               .on_conflict_do_nothing(index_elements=["id"]))
    except (OSError, TimeoutError) as exc:
        log.warning("prediction %s accepted but not yet readable: %r", prediction_id, exc)
    return json_response(row.to_api(settings.base_url).model_dump_json(), status=201)


@routes.get("/v1/predictions/{prediction_id}")
async def get_prediction(request: web.Request) -> web.Response:
    """One prediction of the caller's; 404 for unknown ids and for other owners' ids alike."""
    app = request.app
    query = select(PredictionRow).where(
        PredictionRow.id == request.match_info["prediction_id"],  # type: ignore[arg-type]
        PredictionRow.owner == request[OWNER],  # type: ignore[arg-type]
    )
    async with app[ENGINE].connect() as conn:
        found = (await conn.execute(query)).first()
    if found is None:
        raise NotFound("no such prediction")
    row = PredictionRow.model_validate(found._mapping)
    return json_response(row.to_api(app[SETTINGS].base_url).model_dump_json())

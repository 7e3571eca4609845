"""Accepting a prediction: validate it, make it durable in Kafka, make it readable at once."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from inferhook.db import driver_connection
from inferhook.kafka import publish
from inferhook.ssrf import UnsafeWebhookURL, check_url
from ingest.admission import admit
from ingest.body import check_schema
from ingest.errors import NotFound, QueueFull, ServiceUnavailable, Unprocessable
from ingest.idempotency import Reservation
from ingest.inputs import resolve_files
from ingest.state import CATALOG, ENGINE, PRODUCER, RESOLVER, SETTINGS, TOPICS
from schemas.api import PredictionCreate, ProblemItem
from schemas.events import CREATED_SEQUENCE, Created, EventType, PredictionEvent, event_id, utcnow
from schemas.priority import Priority
from schemas.status import Status
from schemas.tables import PredictionRow
from schemas.tasks import TaskKind
from store import predictions

log = logging.getLogger(__name__)

SOURCE = f"inferhook/ingest/{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class NewPrediction:
    """A validated create request, with what its headers asked for."""

    owner: str
    body: PredictionCreate
    cancel_after: timedelta | None = None
    result_ttl_seconds: float | None = None
    model_input: dict[str, Any] | None = None
    """The input as the model gets it (named files inlined), when it is not `body.input`."""
    kind: TaskKind | None = None
    """Set when made through `/v1/async/<kind>`."""
    task_options: dict[str, Any] | None = None
    """With `kind`: the request options its result is shaped by."""
    api_key_id: str | None = None
    """The API key it is made with (store.accounts.KeyInfo.key_hash)."""


async def validate(app: web.Application, body: PredictionCreate,
                   owner: str) -> dict[str, Any] | None:
    """404 for an unknown model; 422 for input breaking its schema, naming a file `owner`
    does not have, or an unsafe webhook; 413 for files too large to inline.

    Returns the input the model gets when it names files (see ingest.inputs), else None;
    the schema is checked on that input.
    """
    entry = app[CATALOG].get(body.model)
    if entry is None:
        raise NotFound(f"model {body.model!r} does not exist; GET /v1/models lists them")
    model_input = await resolve_files(app, owner, body.input)
    check_schema(entry.validator, body.input if model_input is None else model_input, "input")
    if body.webhook is not None:
        try:
            await check_url(body.webhook, app[SETTINGS].webhook.allow_nets, app[RESOLVER])
        except UnsafeWebhookURL as exc:
            raise Unprocessable(str(exc), [ProblemItem(loc=["body", "webhook"], msg=str(exc))]) from exc
    return model_input


async def accept(app: web.Application, new: NewPrediction, prediction_id: str,
                 reservation: Reservation | None) -> PredictionRow:
    """Write `created` durably (acks=all) to the events topic, then to the request topic
    (with the model's input: named files inlined), then the row.

    In that order: the request must not be consumable before `created` is durable on the
    events topic, or the executor's `started` and outcome could land in the events partition
    ahead of `created` (see DESIGN.md, invariant 1; the projector also holds such events).
    429 and nothing written when the model's queue, the owner's or the API key's predictions
    in flight are at their cap (ingest.admission; the idempotency key's reservation is released);
    503 and nothing created when Kafka refuses `created` (the idempotency key's reservation
    is released); 503 too when it refuses the request after taking `created`: the reservation
    then stays open, so a retry with the same Idempotency-Key finishes the create (see `resume`).
    Run it shielded: once Kafka has the event, the rest must happen even if the client left.
    """
    body = new.body
    try:
        await admit(app, new.owner, new.api_key_id, body.model)
    except QueueFull:
        if reservation is not None:
            await _release(app, reservation)
        raise
    created_at = utcnow()
    created = Created(
        owner=new.owner, model=body.model, input=body.input, webhook=body.webhook,
        webhook_events_filter=[e.value for e in body.webhook_events_filter], created_at=created_at,
        deadline=created_at + new.cancel_after if new.cancel_after else None,
        result_ttl_seconds=new.result_ttl_seconds, kind=new.kind, task_options=new.task_options,
        priority=body.priority, api_key_id=new.api_key_id)
    event = _created_event(prediction_id, created)
    try:
        await publish(app[PRODUCER], app[TOPICS].events, event)
    except KafkaError as exc:
        log.warning("could not create prediction %s: %r", prediction_id, exc)
        if reservation is not None:
            await _release(app, reservation)
        raise ServiceUnavailable("Kafka did not accept the prediction; nothing was created, "
                                 "retry") from exc
    await _enqueue(app, _request(event, new.model_input), body.model, created.priority)
    # Every field is validated already (the create's body, our own clock): building the
    # table model without validating again saves most of its cost (sqlmodel's table init
    # was a tenth of ingest's CPU per create).
    row = PredictionRow.model_construct(
        id=prediction_id, owner=new.owner, model=body.model, status=Status.PENDING.value,
        input=body.input, webhook=body.webhook,
        webhook_events_filter=created.webhook_events_filter, created_at=created_at,
        last_sequence=CREATED_SEQUENCE, deadline=created.deadline,
        result_ttl_seconds=created.result_ttl_seconds, kind=created.kind,
        task_options=created.task_options, priority=created.priority.value,
        api_key_id=created.api_key_id)
    try:
        # Read-your-writes: project our own `created` event now, so a GET right after the
        # 201 finds it on any replica. The dispatcher's projection of it is then a no-op.
        async with driver_connection(app[ENGINE]) as conn:
            if reservation is None:  # one statement, committed on its own: no BEGIN, COMMIT
                await predictions.insert_pending(conn, row.model_dump())
            else:
                async with conn.transaction():
                    await predictions.insert_pending(conn, row.model_dump())
                    await reservation.commit(conn)
    except Exception as exc:  # the prediction is accepted all the same; the dispatcher projects it
        log.warning("prediction %s accepted but not yet readable: %r", prediction_id, exc)
    return row


async def resume(app: web.Application, row: PredictionRow, reservation: Reservation) -> None:
    """Finish a create that died after `created` reached the events topic (see
    ingest.idempotency): write the request again, then commit the reservation.

    The request may already be in Kafka (the creator died after writing it): the model then
    runs twice, and the read model keeps one outcome (executor events have fixed sequences).
    503 when Kafka refuses; the reservation stays open for the next retry. The files the
    input names are inlined again (422 if one was deleted meanwhile).
    """
    if row.status != Status.PENDING:
        return  # it started: the request was consumed
    created = Created(owner=row.owner, model=row.model, input=row.input or {},
                      webhook=row.webhook, webhook_events_filter=row.webhook_events_filter,
                      created_at=row.created_at, deadline=row.deadline,
                      result_ttl_seconds=row.result_ttl_seconds,
                      kind=TaskKind(row.kind) if row.kind else None, task_options=row.task_options,
                      priority=Priority(row.priority), api_key_id=row.api_key_id)
    model_input = await resolve_files(app, row.owner, created.input)
    await _enqueue(app, _request(_created_event(row.id, created), model_input), row.model,
                   created.priority)
    log.warning("prediction %s: its create was interrupted; request written again", row.id)
    async with app[ENGINE].begin() as conn:
        await reservation.commit(conn)


async def _enqueue(app: web.Application, event: PredictionEvent, model: str,
                   priority: Priority) -> None:
    """Write the request to the model's topic of its priority; 503 when Kafka refuses it."""
    try:
        await publish(app[PRODUCER], app[TOPICS].requests(model, priority), event)
    except KafkaError as exc:
        log.warning("prediction %s created but not queued: %r", event.subject, exc)
        raise ServiceUnavailable("Kafka did not accept the prediction's request; retry with "
                                 "the same Idempotency-Key to finish it") from exc


def _request(event: PredictionEvent, model_input: dict[str, Any] | None) -> PredictionEvent:
    """The request record of a `created` event: the same event, with the model's input."""
    if model_input is None or not isinstance(event.data, Created):
        return event
    return event.model_copy(update={"data": event.data.model_copy(update={"input": model_input})})


def _created_event(prediction_id: str, created: Created) -> PredictionEvent:
    return PredictionEvent(id=event_id(prediction_id, CREATED_SEQUENCE), source=SOURCE,
                           type=EventType.CREATED, time=created.created_at,
                           subject=prediction_id, sequence=CREATED_SEQUENCE, data=created)


async def _release(app: web.Application, reservation: Reservation) -> None:
    try:
        await reservation.release(app[ENGINE])
    except Exception as exc:  # it then expires after RESERVATION_GRACE (see ingest.idempotency)
        log.warning("could not release idempotency key of %s: %r", reservation.prediction_id, exc)

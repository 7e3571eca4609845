"""POST /v1/predictions/{id}/cancel: stop a prediction, whatever state it is in.

- `pending`, or `started` in phase `loading` (its model is being loaded: nothing runs it
  yet, and the supervisor says `loading` before any executor has it, cli.loading): a
  `cancel_requested` goes to the control topic (executors skip it, or stop it if one has it
  already) and a `canceled` event (reason canceled_by_user, OUT_OF_BAND_SEQUENCE, which
  outranks any executor event) to the events topic; the answer waits briefly for it to be
  projected.
- `started` and running: only the `cancel_requested`; the executor stops the run and emits
  `canceled`. Send `Prefer: wait` to get the answer once it has.
- terminal: nothing is sent; the prediction comes back unchanged.

Repeating a cancel is harmless: each ends in the same terminal state.
"""

from __future__ import annotations

import asyncio

import uuid_utils
from aiohttp import web

from inferhook.kafka import publish
from ingest import headers
from ingest.create import SOURCE
from ingest.errors import NotFound
from ingest.openapi import operation
from ingest.predictions import prediction_response
from ingest.reads import load_prediction
from ingest.state import ENGINE, OWNER, PRODUCER, TOPICS
from ingest.waiting import preference_applied, wait_terminal, wanted_wait
from schemas.api import Prediction
from schemas.events import (
    EventType,
    PredictionError,
    PredictionEvent,
    cancel_request,
    out_of_band_outcome,
    utcnow,
)
from schemas.status import FailureReason, Status

routes = web.RouteTableDef()

PENDING_SETTLE_SECONDS = 5
"""How long a cancel of a pending prediction waits for `canceled` to be projected."""


def cancel_events(prediction_id: str, pending: bool) -> list[tuple[str, PredictionEvent]]:
    """(topic kind, event) pairs a cancel writes: `control` always, `events` when pending."""
    now = utcnow()
    requested = cancel_request(prediction_id, source=SOURCE, reason=FailureReason.CANCELED_BY_USER,
                               nonce=str(uuid_utils.uuid7()), now=now)
    out: list[tuple[str, PredictionEvent]] = [("control", requested)]
    if pending:
        error = PredictionError(reason=FailureReason.CANCELED_BY_USER,
                                message="canceled by the API user before it started")
        out.append(("events", out_of_band_outcome(prediction_id, source=SOURCE,
                                                  event_type=EventType.CANCELED, error=error,
                                                  now=now)))
    return out


@routes.post("/v1/predictions/{prediction_id}/cancel")
@operation("Cancel a prediction", responses={200: Prediction}, headers=(headers.PREFER_DOC,),
           response_headers={200: {"Preference-Applied": "Present when it waited"}},
           tags=("predictions",), description=__doc__ or "")
async def cancel_prediction(request: web.Request) -> web.Response:
    """Cancel the caller's prediction (idempotent); answer with it."""
    app = request.app
    row = await load_prediction(app[ENGINE], request.match_info["prediction_id"], request[OWNER])
    if row is None:
        raise NotFound("no such prediction")
    wait = wanted_wait(request)
    status = Status(row.status)
    if not status.is_terminal():
        topics, producer = app[TOPICS], app[PRODUCER]
        pending = status is Status.PENDING or (status is Status.STARTED and row.phase == "loading")
        sends = [publish(producer, topics.control if kind == "control" else topics.events, event)
                 for kind, event in cancel_events(row.id, pending)]
        await asyncio.shield(asyncio.gather(*sends))
        settle = wait or (PENDING_SETTLE_SECONDS if pending else None)
        if settle is not None:
            row = await wait_terminal(app, row, settle)
    response = prediction_response(row, request)
    preference_applied(response, wait)
    return response

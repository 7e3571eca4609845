"""A prediction's event history: as a list, and as a server-sent-events stream.

The stream sends each recorded event as `id: <sequence>`, `event: <short type>` (created,
started, logs, output, succeeded, failed, canceled) and `data: <the event as JSON>`, then
closes after the terminal one. Resume with `Last-Event-ID` (or `?after=`). While nothing
happens it sends a `: keep-alive` comment every INFERHOOK_API_STREAM_KEEPALIVE_SECONDS; with
`?queue=true`, while the prediction is pending, a `queue` message instead (and one at once), without an id:
`data: {"queue_position": …, "estimated_start_at": …}` as GET shows them (ingest.position).
It wakes on the process's change feed, never by polling.
"""

from __future__ import annotations

from aiohttp import web

from ingest.body import parse_query
from ingest.errors import BadRequest, NotFound
from ingest.openapi import HeaderParam, operation
from ingest.position import shown
from ingest.reads import load_events, load_prediction
from ingest.state import CHANGES, ENGINE, OWNER, SETTINGS
from schemas.api import EventList, EventsQuery, HistoryEvent, ProblemItem, StreamQuery
from schemas.events import EventType
from schemas.status import Status
from schemas.tables import PredictionRow

routes = web.RouteTableDef()

LAST_EVENT_ID_DOC = HeaderParam("Last-Event-ID", "Resume after this sequence number",
                                {"type": "string", "pattern": "^[0-9]{1,10}$"})


async def _owned(request: web.Request) -> PredictionRow:
    row = await load_prediction(request.app[ENGINE], request.match_info["prediction_id"],
                                request[OWNER])
    if row is None:
        raise NotFound("no such prediction")
    return row


@routes.get("/v1/predictions/{prediction_id}/events")
@operation("A prediction's event history", query=EventsQuery, responses={200: EventList},
           tags=("events",))
async def list_events(request: web.Request) -> web.Response:
    """Every recorded event after `after`, oldest first, with its sequence number."""
    query = parse_query(EventsQuery, request.query)
    row = await _owned(request)
    body = EventList(results=await load_events(request.app[ENGINE], row, query.after))
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def _resume_point(query: EventsQuery, request: web.Request) -> int:
    last_id = request.headers.get("Last-Event-ID")
    if last_id is None:
        return query.after
    if not last_id.isdigit() or len(last_id) > 10:
        msg = "Last-Event-ID must be a sequence number this stream sent"
        raise BadRequest(msg, [ProblemItem(loc=["header", "Last-Event-ID"], msg=msg)])
    return max(query.after, int(last_id))


def sse_message(event: HistoryEvent) -> bytes:
    """One event in text/event-stream framing."""
    name = event.type.rsplit(".", 1)[-1]
    return f"id: {event.sequence}\nevent: {name}\ndata: {event.model_dump_json()}\n\n".encode()


async def queue_message(app: web.Application, row: PredictionRow) -> bytes:
    """A `queue` message (no id: not part of the history) with where a pending prediction
    stands: {"queue_position", "estimated_start_at"}, as GET shows them."""
    prediction = await shown(app, row, row.to_api(app[SETTINGS].base_url))
    data = prediction.model_dump_json(include={"queue_position", "estimated_start_at"})
    return f"event: queue\ndata: {data}\n\n".encode()


def _is_terminal(event: HistoryEvent) -> bool:
    try:
        status = EventType(event.type).status
    except ValueError:
        return False
    return status is not None and status.is_terminal()


@routes.get("/v1/predictions/{prediction_id}/stream")
@operation("Stream a prediction's events (server-sent events)", query=StreamQuery,
           headers=(LAST_EVENT_ID_DOC,), responses={200: None}, media_type="text/event-stream",
           stream_item=HistoryEvent,
           tags=("events",), description=__doc__ or "")
async def stream_events(request: web.Request) -> web.StreamResponse:
    """The history, then each new event as it is recorded; closes after the terminal one."""
    query = parse_query(StreamQuery, request.query)
    after = _resume_point(query, request)
    row = await _owned(request)
    app = request.app
    engine, keepalive = app[ENGINE], app[SETTINGS].api.stream_keepalive_seconds
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    with app[CHANGES].watch(row.id) as watch:
        while True:
            events = await load_events(engine, row, after)
            for event in events:
                await response.write(sse_message(event))
                after = event.sequence
                if _is_terminal(event):
                    return response
            if not events and Status(row.status).is_terminal():
                # Terminal without a recorded terminal event (history expired): nothing more comes.
                return response
            queued = query.queue and row.status == Status.PENDING
            if queued:
                await response.write(await queue_message(app, row))
            while not await watch.wait(keepalive):
                if queued:
                    await response.write(await queue_message(app, row))
                else:
                    await response.write(b": keep-alive\n\n")
            row = await load_prediction(engine, row.id, row.owner) or row

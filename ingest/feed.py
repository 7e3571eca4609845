"""`GET /v1/events`: the caller's account event feed, oldest first, with a cursor.

Every event the read model recorded for the caller's predictions (store.feed says in which
order and why nothing is skipped), filtered by type and model. With `Prefer: wait=n` an
empty answer is held until a matching event is recorded or the time is up: the request
sleeps on the process's change feed (ingest.changes), woken by the projector's `@<owner>`
NOTIFY at the commit that recorded the event, and reads once per wake-up. The one case it
looks again without a notice: events committed but held back behind an older transaction
still running (store.feed.held_back), re-read after HELD_BACK_FIRST…HELD_BACK_CAP seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest import headers
from ingest.body import parse_query
from ingest.errors import BadRequest
from ingest.openapi import operation
from ingest.state import CHANGES, ENGINE, OWNER
from ingest.waiting import preference_applied, wanted_wait
from schemas.api import ProblemItem
from schemas.events import event_id
from schemas.feed import Cursor, CursorError, FeedEvent, FeedPage, FeedQuery
from store import feed

routes = web.RouteTableDef()

HELD_BACK_FIRST = 0.01
HELD_BACK_CAP = 0.1
"""Seconds between re-reads while committed events wait behind an older transaction."""

DESCRIPTION = (
    "The caller's events (every recorded lifecycle event of its predictions), oldest first. "
    "Pass `next` back as `after` to continue; the cursor stays valid across restarts. Each "
    "`id` is the event's `webhook-id` and Kafka `ce_id`. With `Prefer: wait=n` an empty page "
    "is held until a matching event arrives or n seconds pass.")


@dataclass(frozen=True)
class Page:
    """What one read found."""

    rows: list[feed.FeedRow]
    more: bool
    """More matching events are readable beyond `rows`."""
    held_back: bool
    """Nothing readable, but matching events wait behind an older transaction."""


def _after(query: FeedQuery) -> Cursor:
    if query.after is None:
        return Cursor()
    try:
        return Cursor.decode(query.after)
    except CursorError as exc:
        msg = "`after` is not a cursor this API handed out; pass a page's `next`"
        raise BadRequest(msg, [ProblemItem(loc=["query", "after"], msg=msg)]) from exc


async def read(engine: AsyncEngine, owner: str, after: Cursor, query: FeedQuery) -> Page:
    """One page of the owner's feed after `after`."""
    filters = {"types": query.type_list, "models": query.model_list}
    async with engine.connect() as conn:
        rows = await feed.page(conn, owner, after, limit=query.limit + 1, **filters)
        held = not rows and await feed.held_back(conn, owner, after, **filters)
    return Page(rows[:query.limit], len(rows) > query.limit, held)


async def read_waiting(app: web.Application, owner: str, after: Cursor, query: FeedQuery,
                       seconds: float) -> Page:
    """The first non-empty page after `after`, or the empty one once `seconds` are up."""
    deadline = time.monotonic() + seconds
    pause = HELD_BACK_FIRST
    with app[CHANGES].watch_owner(owner) as watch:
        # Read after registering: an event committed just before would otherwise be missed.
        page = await read(app[ENGINE], owner, after, query)
        while not page.rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if page.held_back:
                await watch.wait(min(pause, remaining))
                pause = min(2 * pause, HELD_BACK_CAP)
            elif not await watch.wait(remaining):
                break
            page = await read(app[ENGINE], owner, after, query)
    return page


def _event(row: feed.FeedRow) -> FeedEvent:
    return FeedEvent(id=event_id(row.prediction_id, row.sequence), type=row.type,
                     prediction_id=row.prediction_id, model=row.model, sequence=row.sequence,
                     time=row.time, data=row.data)


@routes.get("/v1/events")
@operation("The account's event feed, oldest first", query=FeedQuery, responses={200: FeedPage},
           headers=(headers.PREFER_DOC,),
           response_headers={200: {"Preference-Applied": "Present when it waited"}},
           tags=("events",), description=DESCRIPTION)
async def list_feed(request: web.Request) -> web.Response:
    """A page of the caller's events after `after`; other owners' events never appear."""
    query = parse_query(FeedQuery, request.query)
    after, owner, wait = _after(query), request[OWNER], wanted_wait(request)
    if wait is None:
        page = await read(request.app[ENGINE], owner, after, query)
    else:
        page = await read_waiting(request.app, owner, after, query, wait)
    last = page.rows[-1].cursor if page.rows else after
    body = FeedPage(results=[_event(r) for r in page.rows], next=last.encode(), has_more=page.more)
    response = web.Response(text=body.model_dump_json(), content_type="application/json")
    preference_applied(response, wait)
    return response


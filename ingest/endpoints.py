"""Account webhook endpoint routes: register once, receive every matching event.

    POST   /v1/webhooks/endpoints                      create (201, with its `whsec_` secret)
    GET    /v1/webhooks/endpoints                      list (cursor)
    GET    /v1/webhooks/endpoints/{id}                 one
    PATCH  /v1/webhooks/endpoints/{id}                 change; {disabled: false} re-enables
    DELETE /v1/webhooks/endpoints/{id}                 delete (queued deliveries fail)
    GET    /v1/webhooks/endpoints/{id}/secret          its signing secret(s)
    POST   /v1/webhooks/endpoints/{id}/secret/rotate   new secret; the old one signs for a grace
    POST   /v1/webhooks/endpoints/{id}/test            send a `webhook.test` event
    POST   /v1/webhooks/endpoints/{id}/recover         re-queue failed/skipped of a window
    GET    /v1/webhooks/endpoints/{id}/deliveries      its deliveries with every attempt

Endpoints are per owner: another key's endpoint is 404. URLs pass the same SSRF check as a
prediction's webhook (422 when refused).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from inferhook.ssrf import UnsafeWebhookURL, check_url
from ingest.body import parse, parse_query, read_json
from ingest.errors import BadRequest, NotFound, Unprocessable
from ingest.openapi import operation
from ingest.state import ENGINE, OWNER, RESOLVER, SETTINGS
from schemas.api import ProblemItem
from schemas.endpoints import (
    TEST_EVENT,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointDeleted,
    EndpointDeliveryList,
    EndpointDeliveryQuery,
    EndpointList,
    EndpointQuery,
    EndpointSecret,
    EndpointUpdate,
    Payload,
    Recovered,
    RecoverRequest,
)
from schemas.events import utcnow
from schemas.webhooks import DeliveryState, WebhookDelivery
from store import endpoints, outbox
from store.endpoints import EndpointRecord

routes = web.RouteTableDef()
TAGS = ("webhook endpoints",)
ROOT = "/v1/webhooks/endpoints"
ONE = ROOT + "/{endpoint_id}"
NO_SUCH = "no such webhook endpoint"


def _json(model: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(),
                        content_type="application/json")


def _shown(record: EndpointRecord) -> dict[str, Any]:
    return {"id": record.id, "url": record.url, "description": record.description,
            "event_types": record.event_types, "models": record.models,
            "rate_limit": record.rate_limit, "ordered": record.ordered,
            "payload": Payload(record.payload), "disabled": record.disabled_at is not None,
            "disabled_at": record.disabled_at, "disabled_reason": record.disabled_reason,
            "failing_since": record.failing_since, "created_at": record.created_at,
            "updated_at": record.updated_at}


def _secret(record: EndpointRecord) -> EndpointSecret:
    live = record.previous_expires_at is not None and record.previous_expires_at > utcnow()
    return EndpointSecret(key=record.secret,
                          previous_key=record.previous_secret if live else None,
                          previous_key_expires_at=record.previous_expires_at if live else None)


async def _checked(request: web.Request, body: EndpointCreate | EndpointUpdate) -> None:
    """422 for unknown event types, bad model names or a URL we refuse to call."""
    problems = [ProblemItem(loc=["body", *loc], msg=msg) for loc, msg in body.problems()]
    if body.url is not None:
        try:
            await check_url(body.url, request.app[SETTINGS].webhook.allow_nets,
                            request.app[RESOLVER])
        except UnsafeWebhookURL as exc:
            problems.append(ProblemItem(loc=["body", "url"], msg=str(exc)))
    if problems:
        raise Unprocessable(f"{len(problems)} problem(s) with the request body", problems)


async def _owned(request: web.Request) -> EndpointRecord:
    async with request.app[ENGINE].connect() as conn:
        record = await endpoints.get(conn, request[OWNER], request.match_info["endpoint_id"])
    if record is None:
        raise NotFound(NO_SUCH)
    return record


def _cursor(value: str | None) -> str | None:
    if value is not None and not value.replace("_", "").isalnum():
        msg = "cursor is not one this API handed out; use the `next` URL of a page"
        raise BadRequest(msg, [ProblemItem(loc=["query", "cursor"], msg=msg)])
    return value


def _next_url(request: web.Request, cursor: str) -> str:
    params = {k: v for k, v in request.query.items() if k != "cursor"} | {"cursor": cursor}
    return f"{request.app[SETTINGS].base_url}{request.path}?{urlencode(params)}"


@routes.post(ROOT)
@operation("Create a webhook endpoint", body=EndpointCreate, responses={201: EndpointCreated},
           tags=TAGS, response_headers={201: {"Location": "URL of the new endpoint"}},
           description="Every event of the caller's predictions that matches `event_types` and "
                       "`models` (empty: all) is delivered to `url`, signed with the endpoint's "
                       "own secret; 422 for a URL resolving to a refused address.")
async def create_endpoint(request: web.Request) -> web.Response:
    """Register an endpoint; the answer carries its signing secret."""
    body = parse(EndpointCreate, await read_json(request, request.app[SETTINGS].max_body_bytes))
    await _checked(request, body)
    async with request.app[ENGINE].begin() as conn:
        record = await endpoints.create(conn, request[OWNER], body.model_dump(),
                                        disabled=body.disabled)
    response = _json(EndpointCreated(**_shown(record), secret=record.secret), status=201)
    response.headers["Location"] = f"{request.app[SETTINGS].base_url}{ROOT}/{record.id}"
    return response


@routes.get(ROOT)
@operation("List webhook endpoints", query=EndpointQuery, responses={200: EndpointList},
           tags=TAGS)
async def list_endpoints(request: web.Request) -> web.Response:
    """A page of the caller's endpoints; `next` is the following page."""
    query = parse_query(EndpointQuery, request.query)
    async with request.app[ENGINE].connect() as conn:
        records = await endpoints.page(conn, request[OWNER], after=_cursor(query.cursor),
                                       limit=query.limit + 1)
    following = None
    if len(records) > query.limit:
        records = records[:query.limit]
        following = _next_url(request, records[-1].id)
    return _json(EndpointList(results=[Endpoint(**_shown(r)) for r in records], next=following))


@routes.get(ONE)
@operation("Get a webhook endpoint", responses={200: Endpoint}, tags=TAGS)
async def get_endpoint(request: web.Request) -> web.Response:
    """One of the caller's endpoints."""
    return _json(Endpoint(**_shown(await _owned(request))))


@routes.patch(ONE)
@operation("Change a webhook endpoint", body=EndpointUpdate, responses={200: Endpoint},
           tags=TAGS, description="Only the fields given change. `disabled: false` re-enables "
                                  "an endpoint (its skipped deliveries stay skipped: recover "
                                  "them); `disabled: true` skips deliveries until then.")
async def update_endpoint(request: web.Request) -> web.Response:
    """Change the fields given."""
    body = parse(EndpointUpdate, await read_json(request, request.app[SETTINGS].max_body_bytes))
    await _checked(request, body)
    fields = body.model_dump(exclude_unset=True)
    if any(fields.get(k, 0) is None for k in ("url", "description", "ordered", "payload",
                                              "event_types", "models", "disabled")):
        msg = "only rate_limit may be set to null"
        raise Unprocessable(msg, [ProblemItem(loc=["body"], msg=msg)])
    async with request.app[ENGINE].begin() as conn:
        record = await endpoints.get(conn, request[OWNER], request.match_info["endpoint_id"],
                                     lock=True)
        if record is None:
            raise NotFound(NO_SUCH)
        if "disabled" in fields and fields["disabled"] != (record.disabled_at is not None):
            await endpoints.set_disabled(conn, record.id, disabled=bool(fields["disabled"]),
                                         reason="disabled by its owner")
        changed = await endpoints.change(conn, request[OWNER], record.id, fields)
    if changed is None:
        raise NotFound(NO_SUCH)
    return _json(Endpoint(**_shown(changed)))


@routes.delete(ONE)
@operation("Delete a webhook endpoint", responses={200: EndpointDeleted}, tags=TAGS,
           description="Its queued deliveries are failed (their history stays in the outbox).")
async def delete_endpoint(request: web.Request) -> web.Response:
    """Delete one of the caller's endpoints."""
    endpoint_id = request.match_info["endpoint_id"]
    async with request.app[ENGINE].begin() as conn:
        if not await endpoints.remove(conn, request[OWNER], endpoint_id):
            raise NotFound(NO_SUCH)
    return _json(EndpointDeleted(id=endpoint_id))


@routes.get(ONE + "/secret")
@operation("Get a webhook endpoint's signing secret", responses={200: EndpointSecret},
           tags=TAGS)
async def get_endpoint_secret(request: web.Request) -> web.Response:
    """The `whsec_…` secret the endpoint's webhooks are signed with (and the previous one
    during a rotation's grace period)."""
    return _json(_secret(await _owned(request)))


@routes.post(ONE + "/secret/rotate")
@operation("Rotate a webhook endpoint's signing secret", responses={200: EndpointSecret},
           tags=TAGS, description="A new secret signs from now on; the old one keeps signing "
                                  "alongside it until `previous_key_expires_at` "
                                  "(INFERHOOK_WEBHOOK_ROTATION_GRACE).")
async def rotate_endpoint_secret(request: web.Request) -> web.Response:
    """Make a new secret; the old one signs beside it for the grace period."""
    grace = timedelta(seconds=request.app[SETTINGS].webhook.rotation_grace)
    async with request.app[ENGINE].begin() as conn:
        record = await endpoints.rotate(conn, request[OWNER], request.match_info["endpoint_id"],
                                        grace)
    if record is None:
        raise NotFound(NO_SUCH)
    return _json(_secret(record))


@routes.post(ONE + "/test")
@operation("Send a test event to a webhook endpoint", responses={202: WebhookDelivery},
           tags=TAGS, description="Queues one `webhook.test` event (recorded `skipped` when "
                                  "the endpoint is disabled).")
async def test_endpoint(request: web.Request) -> web.Response:
    """Queue a `webhook.test` message to the endpoint."""
    record = await _owned(request)
    message = endpoints.message(record, TEST_EVENT, {
        "type": TEST_EVENT, "endpoint_id": record.id, "time": utcnow().isoformat()})
    async with request.app[ENGINE].begin() as conn:
        await outbox.enqueue(conn, [message])
    shown = WebhookDelivery(webhook_id=message.webhook_id, prediction_id="",
                            event_type=TEST_EVENT, sequence=0, url=record.url,
                            state=DeliveryState.SKIPPED if message.skipped
                            else DeliveryState.PENDING, attempts=0,
                            next_attempt_at=None if message.skipped else message.due,
                            created_at=message.due, endpoint_id=record.id)
    return _json(shown, status=202)


@routes.post(ONE + "/recover")
@operation("Re-send an endpoint's failed and skipped deliveries", body=RecoverRequest,
           responses={202: Recovered}, tags=TAGS,
           description="Every delivery to the endpoint made in [since, until) that failed or "
                       "was skipped (while disabled) is queued again, in the order it was made, "
                       "with the same `webhook-id`. A disabled endpoint sends them once "
                       "re-enabled.")
async def recover_endpoint(request: web.Request) -> web.Response:
    """Queue the window's failed and skipped deliveries again."""
    body = parse(RecoverRequest, await read_json(request, request.app[SETTINGS].max_body_bytes))
    record = await _owned(request)
    async with request.app[ENGINE].begin() as conn:
        count = await endpoints.recover(conn, record.id, body.since, body.until,
                                        request.app[SETTINGS].base_url)
    return _json(Recovered(requeued=count), status=202)


@routes.get(ONE + "/deliveries")
@operation("List an endpoint's deliveries, newest first, with attempts",
           query=EndpointDeliveryQuery, responses={200: EndpointDeliveryList}, tags=TAGS)
async def list_endpoint_deliveries(request: web.Request) -> web.Response:
    """A page of the endpoint's deliveries (e.g. `?status=failed`), each with its attempts."""
    query = parse_query(EndpointDeliveryQuery, request.query)
    cursor = _cursor(query.cursor)
    if cursor is not None and not cursor.isdigit():
        msg = "cursor is not one this API handed out; use the `next` URL of a page"
        raise BadRequest(msg, [ProblemItem(loc=["query", "cursor"], msg=msg)])
    record = await _owned(request)
    async with request.app[ENGINE].connect() as conn:
        rows = await endpoints.deliveries(conn, record.id,
                                          state=query.status.value if query.status else None,
                                          before=int(cursor) if cursor else None,
                                          limit=query.limit + 1)
    following = None
    if len(rows) > query.limit:
        rows = rows[:query.limit]
        following = _next_url(request, str(rows[-1][0]))
    return _json(EndpointDeliveryList(results=[d for _, d in rows], next=following))

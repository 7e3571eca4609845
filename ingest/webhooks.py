"""Webhook routes: the signing secret and its rotation, and what was delivered.

    GET  /v1/webhooks/default/secret               the keys webhooks are signed with
    POST /v1/webhooks/default/secret/rotate        new secret; the old one signs during a grace
    GET  /v1/predictions/{id}/webhooks             a prediction's deliveries with every attempt
    POST /v1/predictions/{id}/webhooks/redeliver   send the latest delivery again
    GET  /v1/webhooks/deliveries?status=failed     the caller's deliveries, newest first
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ingest.body import parse_query
from ingest.errors import BadRequest, Conflict, NotFound
from ingest.openapi import operation
from ingest.reads import load_prediction
from ingest.state import ENGINE, OWNER, SETTINGS
from schemas.api import ProblemItem
from schemas.events import utcnow
from schemas.tables import PredictionRow
from schemas.webhooks import (
    DeliveryQuery,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookSigningKeys,
    webhook_id,
)
from store import outbox
from store.accounts import WebhookKeys, public_key_of, rotate_webhook_secret, webhook_keys

routes = web.RouteTableDef()
TAGS = ("webhooks",)


def _json(model: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(),
                        content_type="application/json")


def _keys_body(keys: WebhookKeys) -> WebhookSigningKeys:
    return WebhookSigningKeys(
        key=keys.secret, previous_key=keys.previous_secret,
        previous_key_expires_at=keys.previous_expires_at,
        public_key=public_key_of(keys.signing_key) if keys.signing_key else None)


async def _owned_prediction(request: web.Request) -> PredictionRow:
    row = await load_prediction(request.app[ENGINE], request.match_info["prediction_id"],
                                request[OWNER])
    if row is None:
        raise NotFound("no such prediction")
    return row


@routes.get("/v1/webhooks/default/secret")
@operation("Get the webhook signing secret", responses={200: WebhookSigningKeys}, tags=TAGS,
           description="The `whsec_…` secret webhooks to the caller are signed with (made on "
                       "first use); during a rotation's grace period also the previous one.")
async def get_webhook_secret(request: web.Request) -> web.Response:
    """The secret webhooks to the caller are signed with (`whsec_…`)."""
    settings = request.app[SETTINGS].webhook
    keys = await webhook_keys(request.app[ENGINE], request[OWNER], ed25519=settings.ed25519)
    return _json(_keys_body(keys))


@routes.post("/v1/webhooks/default/secret/rotate")
@operation("Rotate the webhook signing secret", responses={200: WebhookSigningKeys}, tags=TAGS,
           description="A new secret signs from now on; the old one keeps signing alongside it "
                       "(two `v1,` signatures) until `previous_key_expires_at`.")
async def rotate_secret(request: web.Request) -> web.Response:
    """Make a new secret; the previous one keeps signing for INFERHOOK_WEBHOOK_ROTATION_GRACE."""
    settings = request.app[SETTINGS].webhook
    engine, owner = request.app[ENGINE], request[OWNER]
    await rotate_webhook_secret(engine, owner, timedelta(seconds=settings.rotation_grace))
    return _json(_keys_body(await webhook_keys(engine, owner, ed25519=settings.ed25519)))


@routes.get("/v1/predictions/{prediction_id}/webhooks")
@operation("List a prediction's webhook deliveries and attempts",
           responses={200: WebhookDeliveryList}, tags=TAGS)
async def list_prediction_webhooks(request: web.Request) -> web.Response:
    """Every delivery of the prediction, in sequence order, each with its attempts."""
    prediction = await _owned_prediction(request)
    async with request.app[ENGINE].connect() as conn:
        deliveries = await outbox.of_prediction(conn, prediction.id, request[OWNER])
    return _json(WebhookDeliveryList(results=deliveries))


@routes.post("/v1/predictions/{prediction_id}/webhooks/redeliver")
@operation("Send a prediction's latest webhook again", responses={202: WebhookDelivery},
           errors=(409,), tags=TAGS,
           description="Queues the latest delivery again with a fresh retry schedule and the "
                       "same `webhook-id` (a prediction without deliveries gets one of its "
                       "current state). 409 when the prediction has no webhook.")
async def redeliver(request: web.Request) -> web.Response:
    """Queue the latest delivery of the prediction again (same webhook-id)."""
    prediction = await _owned_prediction(request)
    if not prediction.webhook:
        raise Conflict("this prediction has no webhook")
    base_url = request.app[SETTINGS].base_url
    body = prediction.to_api(base_url).model_dump_json().encode()
    fallback = outbox.NewDelivery(
        webhook_id=webhook_id(prediction.id, prediction.last_sequence),
        prediction_id=prediction.id, owner=request[OWNER], url=prediction.webhook,
        event_type=f"inferhook.prediction.{prediction.status}",
        sequence=prediction.last_sequence, body=body, due=utcnow())
    async with request.app[ENGINE].begin() as conn:
        delivery = await outbox.requeue_latest(conn, prediction.id, request[OWNER], fallback)
    return _json(delivery, status=202)


@routes.get("/v1/webhooks/deliveries")
@operation("List the caller's webhook deliveries, newest first", query=DeliveryQuery,
           responses={200: WebhookDeliveryList}, tags=TAGS)
async def list_deliveries(request: web.Request) -> web.Response:
    """A page of the caller's deliveries (e.g. `?status=failed`); `next` is the following page."""
    query = parse_query(DeliveryQuery, request.query)
    before = None
    if query.cursor is not None:
        if not query.cursor.isdigit():
            msg = "cursor is not one this API handed out; use the `next` URL of a page"
            raise BadRequest(msg, [ProblemItem(loc=["query", "cursor"], msg=msg)])
        before = int(query.cursor)
    async with request.app[ENGINE].connect() as conn:
        rows = await outbox.of_owner(conn, request[OWNER],
                                     state=query.status.value if query.status else None,
                                     before=before, limit=query.limit + 1)
    following = None
    if len(rows) > query.limit:
        rows = rows[:query.limit]
        params = {k: v for k, v in request.query.items() if k != "cursor"}
        params["cursor"] = str(rows[-1][0])
        following = f"{request.app[SETTINGS].base_url}/v1/webhooks/deliveries?{urlencode(params)}"
    return _json(WebhookDeliveryList(results=[d for _, d in rows], next=following))

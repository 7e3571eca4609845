"""Routes under /v1/webhooks: the caller's signing secret."""

from __future__ import annotations

from aiohttp import web

from inferhook.accounts import webhook_secret
from ingest.state import ENGINE, OWNER
from schemas.api import WebhookSecret

routes = web.RouteTableDef()


@routes.get("/v1/webhooks/default/secret")
async def get_webhook_secret(request: web.Request) -> web.Response:
    """The secret webhooks to the caller are signed with (`whsec_…`)."""
    secret = await webhook_secret(request.app[ENGINE], request[OWNER])
    return web.Response(text=WebhookSecret(key=secret).model_dump_json(),
                        content_type="application/json")

"""GET /v1/account: who the API key in use belongs to."""

from __future__ import annotations

from aiohttp import web

from ingest.openapi import operation
from ingest.state import API_KEY
from schemas.api import Account

routes = web.RouteTableDef()


@routes.get("/v1/account")
@operation("The account of the API key in use", responses={200: Account}, tags=("account",))
async def get_account(request: web.Request) -> web.Response:
    """The owner and which key (by prefix) made this request."""
    key = request[API_KEY]
    body = Account(owner=key.owner, key_prefix=key.prefix, key_created_at=key.created_at)
    return web.Response(text=body.model_dump_json(), content_type="application/json")

"""The API's own description: /openapi.json and a /docs page served from this package.

The machine may be offline, so /docs is one self-contained HTML file (no CDN) that reads
/openapi.json and lays out every operation with its parameters, bodies and answers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import orjson
from aiohttp import web

from ingest.openapi import build_spec, operation
from ingest.state import OPENAPI, SETTINGS

routes = web.RouteTableDef()
DOCS_PAGE = Path(__file__).resolve().parent / "static" / "docs.html"


def _version() -> str:
    try:
        return version("inferhook")
    except PackageNotFoundError:
        return "0.0.0"


async def render_spec(app: web.Application) -> None:
    """on_startup: build the document once, after every route module has registered."""
    spec = build_spec(app, title="inferhook", version=_version(), server_url=app[SETTINGS].base_url)
    app[OPENAPI] = orjson.dumps(spec)


@routes.get("/openapi.json")
@operation("This API as an OpenAPI 3.1 document", responses={200: None}, public=True,
           tags=("meta",))
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document (generated from the route declarations and pydantic models)."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


@routes.get("/docs")
@operation("Human-readable API documentation (HTML)", responses={200: None}, public=True,
           media_type="text/html", tags=("meta",))
async def docs_page(request: web.Request) -> web.FileResponse:
    """A self-contained page that renders /openapi.json."""
    return web.FileResponse(DOCS_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})

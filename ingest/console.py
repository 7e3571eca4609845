"""The console: a web page at /console for people, on top of the public API.

Only the page's shell is served here, without a key: one HTML file, one JavaScript module
and one stylesheet from `static/console/` (plain files, no build step, nothing from a CDN).
Everything it shows comes from the authenticated /v1 API, called from the browser with the
API key the user pastes in (kept in sessionStorage). The Content-Security-Policy lets the page
load and call only this origin, and never run inline script.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ingest.openapi import operation

routes = web.RouteTableDef()
ASSETS = Path(__file__).resolve().parent / "static" / "console"
TAGS = ("console",)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str, content_type: str) -> web.FileResponse:
    return web.FileResponse(ASSETS / name,
                            headers={**SECURITY_HEADERS, "Content-Type": content_type})


@routes.get("/console")
@operation("The console: predictions, events, webhooks, models (HTML)", responses={200: None},
           public=True, media_type="text/html", tags=TAGS,
           description="A page for people. Its data comes from the /v1 API with the API key "
                       "the user enters; the page itself needs none.")
async def console_page(request: web.Request) -> web.FileResponse:
    """The console's HTML shell."""
    return _asset("index.html", "text/html; charset=utf-8")


@routes.get("/console/app.js")
@operation("The console's script", responses={200: None}, public=True,
           media_type="text/javascript", tags=TAGS)
async def console_script(request: web.Request) -> web.FileResponse:
    """The console's JavaScript module."""
    return _asset("app.js", "text/javascript; charset=utf-8")


@routes.get("/console/endpoints.js")
@operation("The console's webhook endpoints pages (script)", responses={200: None}, public=True,
           media_type="text/javascript", tags=TAGS)
async def console_endpoints_script(request: web.Request) -> web.FileResponse:
    """The console's webhook endpoints module (imported by app.js)."""
    return _asset("endpoints.js", "text/javascript; charset=utf-8")


@routes.get("/console/console.css")
@operation("The console's stylesheet", responses={200: None}, public=True, media_type="text/css",
           tags=TAGS)
async def console_styles(request: web.Request) -> web.FileResponse:
    """The console's stylesheet."""
    return _asset("console.css", "text/css; charset=utf-8")

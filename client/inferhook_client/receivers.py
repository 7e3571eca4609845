"""Webhook receivers that verify each delivery before handing it to your callback.

    app.router.add_post("/hook", aiohttp_handler(secret, on_delivery))   # aiohttp (extra)
    application = wsgi_app(secret, on_delivery)                          # any WSGI server

Verified deliveries get 204 after the callback returns; forged, stale or malformed ones get
401 and never reach the callback. A callback that raises gets 500, so inferhook retries.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from inferhook_client.errors import WebhookVerificationError
from inferhook_client.webhooks import TOLERANCE_SECONDS, Delivery, verify_delivery

if TYPE_CHECKING:
    from aiohttp import web

OnDelivery = Callable[[Delivery], Any]
"""Called with each verified delivery (may be async for aiohttp_handler)."""
OnRejected = Callable[[WebhookVerificationError], Any]
"""Called with the reason a delivery was refused."""


def aiohttp_handler(secret: str | Sequence[str], callback: OnDelivery, *,
                    on_rejected: OnRejected | None = None,
                    tolerance: float = TOLERANCE_SECONDS,
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp request handler that verifies, then awaits/calls `callback(delivery)`."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            delivery = verify_delivery(request.headers, body, secret, tolerance=tolerance)
        except WebhookVerificationError as exc:
            if on_rejected is not None:
                on_rejected(exc)
            return web.Response(status=401, text=str(exc))
        result = callback(delivery)
        if inspect.isawaitable(result):
            await result
        return web.Response(status=204)

    return handle


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def wsgi_app(secret: str | Sequence[str], callback: OnDelivery, *,
             on_rejected: OnRejected | None = None,
             tolerance: float = TOLERANCE_SECONDS,
             ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI application that verifies each POST, then calls `callback(delivery)`."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Allow", "POST")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body: bytes = environ["wsgi.input"].read(length) if length else b""
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        try:
            delivery = verify_delivery(headers, body, secret, tolerance=tolerance)
        except WebhookVerificationError as exc:
            if on_rejected is not None:
                on_rejected(exc)
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [str(exc).encode()]
        callback(delivery)
        start_response("204 No Content", [])
        return [b""]

    return application

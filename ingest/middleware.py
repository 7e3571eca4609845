"""Request middlewares: errors → problem+json; API-key authentication with rate limits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from inferhook.resilience import Dependency, mark, outage
from ingest.errors import (
    ApiError,
    HttpError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from ingest.ratelimit import Kind
from ingest.state import API_KEY, KEYS, LIMITER, OWNER, SETTINGS

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
                          # the console's shell only; its data comes from the /v1 API
                          "/console", "/console/app.js", "/console/endpoints.js",
                          "/console/console.css"})
_SIGNED = "__signed_link__"

Handled = TypeVar("Handled", bound=Callable[..., Any])


def signed_link(handler: Handled) -> Handled:
    """Mark a route that also opens to a signed link: a request to it without a key but
    with a `signature` query parameter skips authentication (the handler checks the link)."""
    setattr(handler, _SIGNED, True)
    return handler


def _by_signed_link(request: web.Request) -> bool:
    return ("Authorization" not in request.headers and "signature" in request.query
            and getattr(request.match_info.handler, _SIGNED, False))


def problem_response(error: ApiError) -> web.Response:
    """The one error shape, as a response."""
    return web.Response(status=error.status, body=error.problem().model_dump_json(),
                        content_type="application/problem+json", headers=error.headers)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into problem+json; nothing else builds error responses."""
    try:
        return await handler(request)
    except ApiError as error:
        return problem_response(error)
    except web.HTTPRequestEntityTooLarge:
        return problem_response(PayloadTooLarge(f"body exceeds {request.app[SETTINGS].max_body_bytes} bytes"))
    except web.HTTPNotFound:
        return problem_response(NotFound(f"no route for {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        refused = HttpError(405, "Method not allowed", f"{request.method} is not allowed here")
        response = problem_response(refused)
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        return problem_response(HttpError(exc.status, exc.reason, exc.text or exc.reason))
    except Exception as exc:
        # Handlers talk to Postgres unless they raise a Kafka error; a bare network error is
        # the database pool's (the producer wraps its own in KafkaError).
        away = outage(exc, network=Dependency.POSTGRES)
        if away is not None:
            mark(away, up=False)
            log.warning("%s away on %s %s: %r", away.value, request.method, request.path, exc)
            return problem_response(ServiceUnavailable(f"{away.value} did not answer; retry"))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(ApiError("unexpected error; it has been logged"))


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve `Authorization: Bearer <key>` to an owner and charge the key's rate limit.

    Every non-public route needs a key, except a request that brings a signed link to a
    route marked `signed_link`. POSTs draw from the key's create bucket, other methods from
    its read bucket (one middleware for both: it is on every request's path).
    """
    if request.path in PUBLIC_PATHS or _by_signed_link(request):
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    if len(key) > 200:
        raise Unauthorized("unknown or revoked API key")
    app = request.app
    keys = app[KEYS]
    info = keys.cached(key) or await keys.lookup(key)
    if info is None:
        raise Unauthorized("unknown or revoked API key")
    request[OWNER] = info.owner
    request[API_KEY] = info
    if not app[SETTINGS].api.rate_limit_enabled:
        return await handler(request)
    kind = Kind.CREATE if request.method == "POST" else Kind.READ
    allowed, bucket = app[LIMITER].take(info.key_hash, kind)
    if not allowed:
        raise TooManyRequests(
            f"{kind.value} rate limit of this key is spent ({bucket.burst} at once, "
            f"{bucket.rate:g}/s); retry after {bucket.retry_after()}s",
            headers={"Retry-After": str(bucket.retry_after()), **bucket.headers()})
    response = await handler(request)
    if not response.prepared:
        response.headers.update(bucket.headers())
    return response

"""Request middlewares: domain errors → problem+json, and API-key authentication."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from inferhook.accounts import owner_of
from ingest.errors import (
    ApiError,
    HttpError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from ingest.state import ENGINE, OWNER, SETTINGS

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})


def problem_response(error: ApiError) -> web.Response:
    """The one error shape, as a response."""
    return web.Response(status=error.status, body=error.problem().model_dump_json(),
                        content_type="application/problem+json")


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
    except (ConnectionError, TimeoutError, OSError) as exc:
        log.warning("dependency failed on %s %s: %r", request.method, request.path, exc)
        return problem_response(ServiceUnavailable("a backing service did not answer; retry"))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(ApiError("unexpected error; it has been logged"))


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve `Authorization: Bearer <key>` to an owner; every non-public route needs one."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    owner = await owner_of(request.app[ENGINE], key.strip())
    if owner is None:
        raise Unauthorized("unknown or revoked API key")
    request[OWNER] = owner
    return await handler(request)

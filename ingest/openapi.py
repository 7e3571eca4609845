"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they use.

How a route module documents its operations: put `@operation(...)` under the route
decorator, naming the models the handler really parses and answers with::

    routes = web.RouteTableDef()

    @routes.get("/v1/things/{thing_id}")
    @operation("Get one thing", responses={200: Thing}, query=ThingQuery, tags=("things",))
    async def get_thing(request: web.Request) -> web.Response: ...

`operation` only attaches an `Operation` to the handler; `build_spec` walks the app's
router at start-up, so every registered route appears with its method and path, and a
route without `@operation` shows up in `undocumented()` (a test keeps that list empty).
Path parameters come from the path itself; the problem+json error answers every route
can give are added for you (pass `errors=` for more, such as 409).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.api import Problem

Handler = TypeVar("Handler", bound=Callable[..., Any])
ATTRIBUTE = "__openapi_operation__"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

ERROR_TITLES = {
    400: "Malformed request (bad JSON, query or header)",
    401: "Missing, unknown or revoked API key",
    403: "Signed link expired or not valid",
    404: "No such route, model or prediction (another owner's predictions included)",
    409: "Conflict",
    413: "Body over the size limit",
    415: "Body is not application/json (or multipart/form-data where the route takes a form)",
    422: "Valid JSON that breaks the schema; every problem is listed",
    429: "Rate limit spent, or (creates) the model's queue or the account's predictions in flight "
         "at their cap (type queue-full; nothing written); see Retry-After",
    500: "Unexpected error (logged)",
    503: "Kafka or Postgres did not answer; nothing was changed",
}


@dataclass(frozen=True)
class HeaderParam:
    """A request header an operation reads."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """What `/openapi.json` says about one route."""

    summary: str
    responses: dict[int, type[BaseModel] | None]
    """Success answers: status → body model (None: no JSON body, see `media_type`)."""
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    """A multipart/form-data body instead of JSON (`bytes` fields are file parts)."""
    query: type[BaseModel] | None = None
    headers: tuple[HeaderParam, ...] = ()
    response_headers: dict[int, dict[str, str]] = field(default_factory=dict)
    """Documented response headers per status: name → description."""
    errors: tuple[int, ...] = ()
    """Error statuses beyond the ones every route may give."""
    tags: tuple[str, ...] = ()
    public: bool = False
    """True when no API key is needed."""
    signed: bool = False
    """True when a signed link (its query) may stand in for the API key."""
    media_type: str = "application/json"
    """Media type of the success answers."""
    description: str = ""
    creates: str | None = None
    """Path parameter the answer's `id` fills (e.g. prediction_id): adds OpenAPI links."""
    stream_item: type[BaseModel] | None = None
    """text/event-stream answers: the model each event's `data` holds (as JSON)."""


def operation(summary: str, *, responses: dict[int, type[BaseModel] | None],
              body: type[BaseModel] | None = None, form: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, headers: Iterable[HeaderParam] = (),
              response_headers: dict[int, dict[str, str]] | None = None,
              errors: Iterable[int] = (), tags: Iterable[str] = (), public: bool = False,
              signed: bool = False, media_type: str = "application/json",
              description: str = "", creates: str | None = None,
              stream_item: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
    """Attach OpenAPI documentation to a handler (see the module docstring)."""
    described = Operation(summary=summary, responses=responses, body=body, form=form,
                          query=query, headers=tuple(headers),
                          response_headers=response_headers or {}, errors=tuple(errors),
                          tags=tuple(tags), public=public, signed=signed,
                          media_type=media_type, description=description, creates=creates,
                          stream_item=stream_item)

    def mark(handler: Handler) -> Handler:
        setattr(handler, ATTRIBUTE, described)
        return handler

    return mark


def described(route: web.AbstractRoute) -> Operation | None:
    """The documentation attached to a route's handler, if any."""
    found: Operation | None = getattr(route.handler, ATTRIBUTE, None)
    return found


def documented_routes(app: web.Application) -> Iterable[tuple[str, str, web.AbstractRoute]]:
    """(method, path, route) of every route a client can call (HEAD twins of GETs left out)."""
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        yield route.method, route.resource.canonical, route


def undocumented(app: web.Application) -> list[str]:
    """`METHOD path` of each route without `@operation`."""
    return [f"{method} {path}" for method, path, route in documented_routes(app)
            if described(route) is None]


def _error_statuses(op: Operation, path: str) -> set[int]:
    statuses = {400, 500, 503, *op.errors}
    if not op.public:
        statuses |= {401, 429}
    if _PATH_PARAM.search(path) or op.body is not None:
        statuses.add(404)
    if op.body is not None or op.form is not None:
        statuses |= {413, 415, 422}
    if op.signed:
        statuses.add(403)
    return statuses


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Requests the key's bucket holds",
    "RateLimit-Remaining": "Requests left in the bucket now",
    "RateLimit-Reset": "Seconds until the bucket is full again",
}


def _header_objects(names: dict[str, str]) -> dict[str, Any]:
    return {name: {"description": text, "schema": {"type": "string"}} for name, text in names.items()}


Refs = dict[tuple[Any, str], dict[str, Any]]


def _model_refs(ops: list[Operation]) -> tuple[Refs, dict[str, Any]]:
    wanted: dict[tuple[type[BaseModel], Literal["validation", "serialization"]], None] = {
        (Problem, "serialization"): None}
    for op in ops:
        for body in (op.body, op.form):
            if body is not None:
                wanted[(body, "validation")] = None
        for model in [*op.responses.values(), op.stream_item]:
            if model is not None:
                wanted[(model, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template="#/components/schemas/{model}")
    return {(model, mode): ref for (model, mode), ref in refs.items()}, dict(top.get("$defs", {}))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", "")
        prop.pop("title", None)
        params.append({"name": name, "in": "query", "required": name in required,
                       "description": description, "schema": prop})
    return params


def _sse_event(data_schema: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event whose `data` line is JSON matching `data_schema`."""
    return {"type": "object", "required": ["data"], "properties": {
        "id": {"type": "string"}, "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": data_schema}}}


def _untyped(media_type: str) -> dict[str, Any]:
    return {"type": "object"} if media_type == "application/json" else {"type": "string"}


def _operation_object(method: str, path: str, handler_name: str, op: Operation,
                      refs: Refs) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)]
    if op.query is not None:
        params += _query_parameters(op.query)
    params += [{"name": h.name, "in": "header", "required": False, "description": h.description,
                "schema": h.schema} for h in op.headers]
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        headers = dict(op.response_headers.get(status, {}))
        if not op.public:
            headers.update(RATE_LIMIT_HEADERS)
        if model is not None:
            schema = refs[(model, "serialization")]
        elif op.stream_item is not None:
            schema = _sse_event(refs[(op.stream_item, "serialization")])
        else:
            schema = _untyped(op.media_type)
        content = {op.media_type: {"schema": schema}}
        responses[str(status)] = {"description": op.summary, "content": content,
                                  "headers": _header_objects(headers)}
    problem = {"application/problem+json": {"schema": refs[(Problem, "serialization")]}}
    for status in sorted(_error_statuses(op, path) - set(op.responses)):
        extra = {"Retry-After": "Seconds to wait before retrying", **RATE_LIMIT_HEADERS} \
            if status == 429 else {}
        responses[str(status)] = {"description": ERROR_TITLES.get(status, "Error"),
                                  "content": problem, "headers": _header_objects(extra)}
    described_op: dict[str, Any] = {
        "operationId": handler_name, "summary": op.summary, "tags": list(op.tags),
        "parameters": params, "responses": responses}
    if op.description:
        described_op["description"] = op.description
    if op.body is not None:
        described_op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(op.body, "validation")]}}}
    if op.form is not None:
        described_op["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": refs[(op.form, "validation")]}}}
    if op.public:
        described_op["security"] = []
    elif op.signed:
        described_op["security"] = [{"bearer": []}, {}]
    return described_op


def _add_links(paths: dict[str, dict[str, Any]],
               routes: list[tuple[str, str, web.AbstractRoute, Operation]]) -> None:
    """Link each creating answer to every operation taking the id it returns: those under
    the creating path when there are such (each /v1/async/<kind> to its own poll), else all."""
    for method, path, _, op in routes:
        if op.creates is None:
            continue
        token = "{" + op.creates + "}"
        taking = [(m, p) for m, p, _, _ in routes if token in p]
        under = [(m, p) for m, p in taking if p.startswith(path + "/")]
        targets = {f"{m.lower()}_{p}": paths[p][m.lower()]["operationId"]
                   for m, p in (under or taking)}
        links = {name: {"operationId": target,
                        "parameters": {op.creates: "$response.body#/id"}}
                 for name, target in sorted(targets.items())}
        for status, response in paths[path][method.lower()]["responses"].items():
            if status.startswith("2"):
                response["links"] = {_link_name(name): link for name, link in links.items()}


def _link_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def build_spec(app: web.Application, *, title: str, version: str, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route of `app`."""
    routes = [(m, p, r, op) for m, p, r in documented_routes(app) if (op := described(r)) is not None]
    refs, schemas = _model_refs([op for *_, op in routes])
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route, op in routes:
        name = getattr(route.handler, "__name__", f"{method.lower()}_{path}")
        paths.setdefault(path, {})[method.lower()] = _operation_object(method, path, name, op, refs)
    _add_links(paths, routes)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Webhook-first asynchronous ML inference. Errors are RFC 9457 "
                                "problem+json. Authenticate with `Authorization: Bearer <key>`."},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }

"""Reading and validating JSON request bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ValidationError

from ingest.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from schemas.api import ProblemItem

Model = TypeVar("Model", bound=BaseModel)
MAX_DEPTH = 64
"""Deepest nesting of objects and arrays a body may have."""


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body; 415 for another media type, 413 over `limit`, 400 if malformed."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels")
    if b"\\u0000" in raw:  # cheap pre-check; Postgres cannot store NUL in JSON text
        items = [ProblemItem(loc=["body", *loc], msg="text must not contain NUL (\\u0000)")
                 for loc in _nul_locations(data, [])]
        if items:
            raise Unprocessable(f"{len(items)} string(s) contain NUL", items)
    return data


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (bodies may be adversarial)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _nul_locations(data: Any, loc: list[str | int]) -> list[list[str | int]]:
    if isinstance(data, str):
        return [loc] if "\x00" in data else []
    if isinstance(data, dict):
        return [found for key, value in data.items()
                for found in ([[*loc, key]] if "\x00" in key else []) + _nul_locations(value, [*loc, key])]
    if isinstance(data, list):
        return [found for i, value in enumerate(data) for found in _nul_locations(value, [*loc, i])]
    return []


def parse(model: type[Model], data: Any) -> Model:
    """Validate `data` into `model`; 422 listing every problem with its location."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        items = [ProblemItem(loc=["body", *item["loc"]], msg=item["msg"])
                 for item in exc.errors(include_url=False)]
        raise Unprocessable(f"{len(items)} problem(s) with the request body", items) from exc


def parse_query(model: type[Model], query: Mapping[str, str]) -> Model:
    """Validate query parameters into `model`; 400 listing every problem (repeats included)."""
    data: dict[str, str] = {}
    items: list[ProblemItem] = []
    for name, value in query.items():
        if name in data:
            items.append(ProblemItem(loc=["query", name], msg="given more than once"))
        data[name] = value
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        items += [ProblemItem(loc=["query", *item["loc"]], msg=item["msg"])
                  for item in exc.errors(include_url=False)]
    if items:
        raise BadRequest(f"{len(items)} problem(s) with the query parameters", items)
    return parsed


def check_schema(validator: Draft202012Validator, data: dict[str, Any], loc: str) -> None:
    """Validate `data` against a JSON Schema; 422 listing every violation with its path."""
    items = [ProblemItem(loc=["body", loc, *error.absolute_path], msg=error.message[:500])
             for found in validator.iter_errors(data) for error in _closest(found)]
    if items:
        raise Unprocessable(f"{len(items)} problem(s) with `{loc}`", items)


def _closest(error: SchemaError) -> list[SchemaError]:
    """A failed oneOf/anyOf as the problems of its closest branch (the one with the fewest),
    so that `texts` too long reads so rather than "not valid under any of the given schemas"."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[Any, list[SchemaError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return [found for sub in min(branches.values(), key=len) for found in _closest(sub)]

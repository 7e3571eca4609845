"""Reading and validating JSON request bodies."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from ingest.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from schemas.api import ProblemItem

Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body; 415 for another media type, 413 over `limit`, 400 if malformed."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def parse(model: type[Model], data: Any) -> Model:
    """Validate `data` into `model`; 422 listing every problem with its location."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        items = [ProblemItem(loc=["body", *item["loc"]], msg=item["msg"])
                 for item in exc.errors(include_url=False)]
        raise Unprocessable(f"{len(items)} problem(s) with the request body", items) from exc


def check_schema(validator: Draft202012Validator, data: dict[str, Any], loc: str) -> None:
    """Validate `data` against a JSON Schema; 422 listing every violation with its path."""
    items = [ProblemItem(loc=["body", loc, *error.absolute_path], msg=error.message[:500])
             for error in validator.iter_errors(data)]
    if items:
        raise Unprocessable(f"{len(items)} problem(s) with `{loc}`", items)

"""Reading multipart/form-data bodies (OpenAI's file-taking endpoints) within a size limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import PlainValidator, WithJsonSchema

from ingest.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

CHUNK = 64 * 1024
MAX_FIELDS = 64
"""Most parts a form may have."""


@dataclass(frozen=True)
class Upload:
    """A file part of a form."""

    filename: str
    content_type: str
    data: bytes


def _upload(value: Any) -> Upload:
    if not isinstance(value, Upload):
        raise ValueError("must be a file (a form part with a filename)")
    return value


FileField = Annotated[Upload, PlainValidator(_upload),
                      WithJsonSchema({"type": "string", "format": "binary"})]
"""A pydantic field holding an uploaded file (OpenAPI: a binary string)."""


async def read_form(request: web.Request, limit: int) -> dict[str, Any]:
    """The form's fields by name: text as str, files as Upload, `name[]` or repeated names as
    lists. 415 for another media type, 413 once the parts exceed `limit` bytes, 400 when
    the body is not a well-formed form."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("send the body as multipart/form-data")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    fields: dict[str, Any] = {}
    try:
        reader = await request.multipart()
        total, count = 0, 0
        while (part := await reader.next()) is not None:
            count += 1
            if not isinstance(part, BodyPartReader) or not part.name or count > MAX_FIELDS:
                raise BadRequest(f"each form part needs a name; at most {MAX_FIELDS} parts, "
                                 "none nested")
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise PayloadTooLarge(f"body exceeds {limit} bytes")
                data += chunk
            _add(fields, part, bytes(data))
    except (HttpProcessingError, ValueError, AssertionError, LookupError) as exc:
        # aiohttp's reader reports malformed bodies with these (bad part headers, a bad
        # boundary, an unknown charset, a part cut short); UnicodeDecodeError is a ValueError.
        raise BadRequest(f"body is not a well-formed multipart form: {exc}") from exc
    return fields


def _add(fields: dict[str, Any], part: BodyPartReader, data: bytes) -> None:
    name = part.name or ""
    value: str | Upload
    if part.filename is not None:
        value = Upload(part.filename, part.headers.get("Content-Type", "application/octet-stream"),
                       data)
    else:
        value = data.decode(part.get_charset(default="utf-8"))
    if name.endswith("[]"):
        fields.setdefault(name[:-2], []).append(value)
    elif name in fields:
        previous = fields[name]
        fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    else:
        fields[name] = value

"""Routes under /v1/files: upload, metadata, content (with the key or a signed link), delete.

Files are the owner's alone: another owner's id answers 404, as an unknown one does. The
content opens without a key to a signed link (inferhook.filelinks) until the file expires;
a link that expired or was altered answers 403 before anything is looked up.
"""

from __future__ import annotations

import math
import mimetypes
import re
from datetime import timedelta
from pathlib import PurePosixPath
from urllib.parse import quote

import uuid_utils
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from inferhook import datauri
from inferhook.filelinks import FileLinks
from ingest.body import parse_query
from ingest.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from ingest.middleware import signed_link
from ingest.openapi import operation
from ingest.state import ENGINE, FILES, LINKS, OWNER, SETTINGS
from schemas.api import ProblemItem
from schemas.events import utcnow
from schemas.files import (
    FILE_ID_PREFIX,
    PURPOSE,
    ContentQuery,
    FileDeleted,
    FileObject,
    FileUpload,
)
from store.files import StoredFile

routes = web.RouteTableDef()

CHUNK = 256 * 1024
FORM_OVERHEAD = 64 * 1024
"""Bytes of a multipart body beyond the file: boundaries, part headers, `purpose`."""
FIELD_LIMIT = 1024
"""Largest non-file part read (`purpose`, and any part this route does not use)."""
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
GONE = "no such file (deleted, expired, or never yours)"


def file_object(stored: StoredFile, links: FileLinks) -> FileObject:
    """The API's view of a stored file, with a signed link valid until it expires."""
    return FileObject(id=stored.id, bytes=stored.size, created_at=int(stored.created_at.timestamp()),
                      expires_at=math.ceil(stored.expires_at.timestamp()),
                      filename=stored.filename, purpose=stored.purpose,
                      content_type=stored.content_type, url=links.url(stored.id, stored.expires_at))


def _json(body: FileObject | FileDeleted, status: int = 200) -> web.Response:
    return web.Response(status=status, text=body.model_dump_json(), content_type="application/json")


@routes.post("/v1/files")
@operation("Upload a file", form=FileUpload, responses={201: FileObject}, tags=("files",),
           description="multipart/form-data with a `file` part (its filename and Content-Type "
                       "are kept) and a `purpose` part. Name the file in a prediction's input "
                       "as `{\"file_id\": id}`. 413 over INFERHOOK_FILES_MAX_UPLOAD_BYTES.",
           creates="file_id")
async def upload_file(request: web.Request) -> web.Response:
    """Store the uploaded file for the caller; it expires after the upload TTL."""
    app, settings = request.app, request.app[SETTINGS].files
    content, filename, content_type, purpose = await _read_form(request, settings.max_upload_bytes)
    now = utcnow()
    stored = StoredFile(id=FILE_ID_PREFIX + uuid_utils.uuid7().hex, owner=request[OWNER],
                        purpose=purpose, filename=filename, content_type=content_type,
                        size=len(content), created_at=now,
                        expires_at=now + timedelta(seconds=settings.upload_ttl_seconds),
                        prediction_id=None, content=content)
    async with app[ENGINE].begin() as conn:
        await app[FILES].put(conn, [stored])
    response = _json(file_object(stored, app[LINKS]), status=201)
    response.headers["Location"] = f"{app[SETTINGS].base_url}/v1/files/{stored.id}"
    return response


@routes.get("/v1/files/{file_id}")
@operation("Get a file's metadata", responses={200: FileObject}, tags=("files",))
async def get_file(request: web.Request) -> web.Response:
    """One of the caller's files; 404 for unknown ids and other owners' files alike."""
    stored = await _find(request, request[OWNER], content=False)
    return _json(file_object(stored, request.app[LINKS]))


@routes.get("/v1/files/{file_id}/content")
@operation("Get a file's content", responses={200: None}, query=ContentQuery, media_type="*/*",
           signed=True, tags=("files",),
           description="The bytes, as their Content-Type. With the owner's API key, or without "
                       "one through the signed link in the file's `url` (403 once it expired "
                       "or when it was altered).")
@signed_link
async def get_file_content(request: web.Request) -> web.Response:
    """The file's bytes, to its owner or to a valid signed link."""
    file_id = request.match_info["file_id"]
    if OWNER in request:
        owner: str | None = request[OWNER]
    else:
        query = parse_query(ContentQuery, request.query)
        if not request.app[LINKS].valid(file_id, query.expires or "", query.signature or "",
                                        utcnow()):
            raise Forbidden("this link expired or is not valid; the file's metadata, read "
                            "with your API key, holds a fresh `url`")
        owner = None
    stored = await _find(request, owner, content=True)
    disposition = f"inline; filename*=UTF-8''{quote(stored.filename, safe='')}"
    return web.Response(body=stored.content, content_type=stored.content_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        # Uploaded content is served from the API's origin: never let it run there.
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private"})


@routes.delete("/v1/files/{file_id}")
@operation("Delete a file", responses={200: FileDeleted}, tags=("files",))
async def delete_file(request: web.Request) -> web.Response:
    """Delete one of the caller's files (predictions that named it keep their reference)."""
    file_id = request.match_info["file_id"]
    async with request.app[ENGINE].begin() as conn:
        deleted = await request.app[FILES].delete(conn, file_id, request[OWNER])
    if not deleted:
        raise NotFound(GONE)
    return _json(FileDeleted(id=file_id))


async def _find(request: web.Request, owner: str | None, *, content: bool) -> StoredFile:
    file_id = request.match_info["file_id"]
    async with request.app[ENGINE].connect() as conn:
        found = await request.app[FILES].get(conn, [file_id], owner=owner, content=content)
    if file_id not in found:
        raise NotFound(GONE)
    return found[file_id]


async def _read_form(request: web.Request, limit: int) -> tuple[bytes, str, str, str]:
    """(content, filename, content type, purpose) of an upload; 415 when it is not a form,
    413 over `limit`, 422 naming each part that is missing or wrong, 400 when malformed."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data with the parts "
                                   "`file` and `purpose`")
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(f"a file may hold at most {limit} bytes")
    file: tuple[bytes, str, str] | None = None
    purpose: str | None = None
    problems: list[ProblemItem] = []
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            if part.name == "file" and file is None:
                content = await _read_part(part, limit, f"a file may hold at most {limit} bytes")
                file = (content, _filename(part.filename), _content_type(part))
            elif part.name == "purpose" and purpose is None:
                purpose = (await _read_part(part, FIELD_LIMIT, "`purpose` is too long")).decode()
            elif part.name in ("file", "purpose"):
                problems.append(ProblemItem(loc=["body", part.name], msg="given more than once"))
            else:
                await _read_part(part, FIELD_LIMIT, f"part {part.name!r} is too long")
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # aiohttp's parse errors
        raise BadRequest(f"body is not a valid multipart/form-data body: {exc}") from exc
    if file is None:
        problems.append(ProblemItem(loc=["body", "file"], msg="Field required: the file part"))
    elif not file[0]:
        problems.append(ProblemItem(loc=["body", "file"], msg="the file is empty"))
    if purpose is None:
        problems.append(ProblemItem(loc=["body", "purpose"], msg="Field required"))
    elif not PURPOSE.match(purpose):
        problems.append(ProblemItem(loc=["body", "purpose"],
                                    msg=f"must match {PURPOSE.pattern}, e.g. user_data"))
    if problems or file is None or purpose is None:
        raise Unprocessable(f"{len(problems)} problem(s) with the upload", problems)
    return file[0], file[1], file[2], purpose


async def _read_part(part: BodyPartReader, limit: int, too_large: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _filename(given: str | None) -> str:
    """The last path segment of the part's filename, without control characters."""
    name = PurePosixPath(_UNSAFE.sub("", given or "").replace("\\", "/")).name
    return name[-255:] or "file"


def _content_type(part: BodyPartReader) -> str:
    """The part's media type when it names one; else a guess from the filename."""
    given = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if datauri.MEDIA_TYPE.match(given) and given != "application/octet-stream":
        return given
    guessed = mimetypes.guess_type(_filename(part.filename))[0]
    return guessed if guessed and datauri.MEDIA_TYPE.match(guessed) else "application/octet-stream"

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
from urllib.parse import quote, urlencode

import uuid_utils
from aiohttp import web

from inferhook import datauri
from inferhook.filelinks import FileLinks
from ingest.body import parse_query
from ingest.errors import Forbidden, NotFound, PayloadTooLarge, Unprocessable
from ingest.forms import Upload, read_form
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
    FileList,
    FileListQuery,
    FileObject,
    FileUpload,
)
from store.files import StoredFile

routes = web.RouteTableDef()

FORM_OVERHEAD = 64 * 1024
"""Bytes of a form beyond the file that are read: `purpose`, and parts the route ignores."""
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
    upload, purpose = await _read_upload(request, settings.max_upload_bytes)
    now = utcnow()
    stored = StoredFile(id=FILE_ID_PREFIX + uuid_utils.uuid7().hex, owner=request[OWNER],
                        purpose=purpose, filename=_filename(upload.filename),
                        content_type=_content_type(upload), size=len(upload.data),
                        created_at=now,
                        expires_at=now + timedelta(seconds=settings.upload_ttl_seconds),
                        prediction_id=None, content=upload.data)
    async with app[ENGINE].begin() as conn:
        await app[FILES].put(conn, [stored])
    response = _json(file_object(stored, app[LINKS]), status=201)
    response.headers["Location"] = f"{app[SETTINGS].base_url}/v1/files/{stored.id}"
    return response


@routes.get("/v1/files")
@operation("List your files", query=FileListQuery, responses={200: FileList}, tags=("files",),
           description="The caller's unexpired files (uploads and files made from outputs), "
                       "newest first; follow `next` (or pass `last_id` as `after`) for older ones.")
async def list_files(request: web.Request) -> web.Response:
    """One page of the caller's files; other owners' files never appear."""
    query = parse_query(FileListQuery, request.query)
    async with request.app[ENGINE].connect() as conn:
        found = await request.app[FILES].page(conn, request[OWNER], after=query.after,
                                              purpose=query.purpose, limit=query.limit + 1)
    shown, has_more = found[:query.limit], len(found) > query.limit
    following = None
    if has_more:
        params = {k: v for k, v in request.query.items() if k != "after"}
        params["after"] = shown[-1].id
        following = f"{request.app[SETTINGS].base_url}/v1/files?{urlencode(params)}"
    page = FileList(data=[file_object(f, request.app[LINKS]) for f in shown],
                    first_id=shown[0].id if shown else None,
                    last_id=shown[-1].id if shown else None, has_more=has_more, next=following)
    return web.Response(text=page.model_dump_json(), content_type="application/json")


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


async def _read_upload(request: web.Request, limit: int) -> tuple[Upload, str]:
    """The uploaded file and its purpose; 415 when the body is not a form, 413 over
    `limit`, 422 naming each part that is missing or wrong, 400 when malformed."""
    fields = await read_form(request, limit + FORM_OVERHEAD)
    file, purpose = fields.get("file"), fields.get("purpose")
    problems: list[ProblemItem] = []
    if isinstance(file, list):
        problems.append(ProblemItem(loc=["body", "file"], msg="given more than once"))
    elif not isinstance(file, Upload):
        problems.append(ProblemItem(loc=["body", "file"],
                                    msg="Field required: the file part (with a filename)"))
    elif len(file.data) > limit:
        raise PayloadTooLarge(f"a file may hold at most {limit} bytes")
    elif not file.data:
        problems.append(ProblemItem(loc=["body", "file"], msg="the file is empty"))
    if isinstance(purpose, list):
        problems.append(ProblemItem(loc=["body", "purpose"], msg="given more than once"))
    elif not isinstance(purpose, str):
        problems.append(ProblemItem(loc=["body", "purpose"], msg="Field required"))
    elif not PURPOSE.match(purpose):
        problems.append(ProblemItem(loc=["body", "purpose"],
                                    msg=f"must match {PURPOSE.pattern}, e.g. user_data"))
    if problems or not isinstance(file, Upload) or not isinstance(purpose, str):
        raise Unprocessable(f"{len(problems)} problem(s) with the upload", problems)
    return file, purpose


def _filename(given: str | None) -> str:
    """The last path segment of the part's filename, without control characters."""
    name = PurePosixPath(_UNSAFE.sub("", given or "").replace("\\", "/")).name
    return name[-255:] or "file"


def _content_type(upload: Upload) -> str:
    """The part's media type when it names one; else a guess from the filename."""
    given = upload.content_type.split(";")[0].strip().lower()
    if datauri.MEDIA_TYPE.match(given) and given != "application/octet-stream":
        return given
    guessed = mimetypes.guess_type(_filename(upload.filename))[0]
    return guessed if guessed and datauri.MEDIA_TYPE.match(guessed) else "application/octet-stream"

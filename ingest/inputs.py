"""Inputs that name uploaded files: each `{"file_id": …}` becomes the file's `data:` URI.

Resolved here, at ingest, so executors never read Postgres: the model's request record
carries the file base64-encoded (4/3 of its size, plus the URI's prefix), while the
prediction's recorded input (row, history, webhooks, the events topic) keeps the
reference. A request must fit one Kafka record (inferhook.kafka.MAX_MESSAGE_BYTES, 16 MiB):
an input whose inlined files would not fit is refused with 413 before anything is written,
so nothing is half-created. See schemas.files for the convention.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from inferhook import datauri
from inferhook.kafka import MAX_MESSAGE_BYTES
from ingest.errors import PayloadTooLarge, Unprocessable
from ingest.state import ENGINE, FILES
from schemas.api import ProblemItem
from schemas.files import Path, file_references, replace_references
from store.files import StoredFile

REQUEST_HEADROOM = 64 * 1024
"""Bytes of a request record left for all but the input (ids, owner, webhook, headers)."""
MAX_INLINE_BYTES = MAX_MESSAGE_BYTES - REQUEST_HEADROOM
"""Largest input, files inlined, that a request may carry."""


async def resolve_files(app: web.Application, owner: str,
                        value: dict[str, Any]) -> dict[str, Any] | None:
    """`value` with the files it names inlined as `data:` URIs, or None when it names none.

    422 listing each reference whose `file_id` is not a string or not a file of `owner`
    (another owner's file is unknown, as their predictions are); 413 when the inlined
    input would not fit a request record.
    """
    references = file_references(value)
    if not references:
        return None
    ids = sorted({file_id for _, file_id in references if isinstance(file_id, str)})
    async with app[ENGINE].connect() as conn:
        found = await app[FILES].get(conn, ids, owner=owner)
    _check_found(references, found)
    size = len(orjson.dumps(value)) + sum(
        datauri.encoded_size(found[file_id].content_type, found[file_id].size)
        for _, file_id in references)
    if size > MAX_INLINE_BYTES:
        raise PayloadTooLarge(f"the input with its files inlined is {size} bytes; a request "
                              f"holds at most {MAX_INLINE_BYTES}")
    async with app[ENGINE].connect() as conn:
        loaded = await app[FILES].get(conn, ids, owner=owner, content=True)
    _check_found(references, loaded)  # deleted in between
    uris = {file_id: datauri.encode(stored.content_type, stored.content or b"")
            for file_id, stored in loaded.items()}
    resolved: dict[str, Any] = replace_references(value, uris.__getitem__)
    return resolved


def _check_found(references: list[tuple[Path, Any]], found: dict[str, StoredFile]) -> None:
    items = [ProblemItem(loc=["body", "input", *path, "file_id"], msg=_problem(file_id))
             for path, file_id in references
             if not isinstance(file_id, str) or file_id not in found]
    if items:
        raise Unprocessable(f"{len(items)} file reference(s) in `input` name no file of yours",
                            items)


def _problem(file_id: Any) -> str:
    if not isinstance(file_id, str):
        return "file_id must be the id of a file you uploaded (a string)"
    return f"no file {file_id[:80]!r}: upload it with POST /v1/files (or it expired)"

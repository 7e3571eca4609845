"""Files in the API: the file object, uploads, and how inputs and outputs name files.

**Inputs name files by id.** Wherever a model input takes binary data (a base64 `data:`
URI), a JSON object with a `file_id` key may stand instead: `{"file_id": "file-…"}`.
Ingest replaces it by the file's `data:<content_type>;base64,…` URI before the request
reaches the model, after checking that the caller owns the file (422 naming the input's
path otherwise). Other keys of the object are ignored, so a `FileReference` from an output
can be passed back as an input as it is. The prediction's `input` (the API, the history,
webhooks) keeps the reference; only the model's request carries the bytes.

**Outputs hold file references.** Every base64 `data:` URI string in an output (at any
depth) is stored as a file of the prediction's owner and replaced by a `FileReference`
before the output is recorded or sent: the row, the event history and webhook bodies all
carry `{"file_id", "url", "content_type", "bytes"}`, never the bytes. `url` is a signed
content link that opens the file without an API key until the result expires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FILE_ID_PREFIX = "file-"
OUTPUT_PURPOSE = "output"
"""The purpose of files the dispatcher made from outputs."""
PURPOSE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""What an upload's `purpose` may be (free text, e.g. `user_data`, as OpenAI's)."""

Path = tuple[str | int, ...]


class FileObject(BaseModel):
    """A stored file (OpenAI's file object, plus its content type, expiry and a signed link)."""

    id: str = Field(description="`file-…`; name it in an input as `{\"file_id\": id}`")
    object: Literal["file"] = "file"
    bytes: int = Field(description="Size of the content")
    created_at: int = Field(description="Unix seconds")
    expires_at: int = Field(description="Unix seconds; the file is deleted then")
    filename: str
    purpose: str = Field(description="As given at upload; `output` for files made from outputs")
    content_type: str
    url: str = Field(description="Signed content link, usable without an API key until expires_at")


class FileListQuery(BaseModel):
    """Query parameters of `GET /v1/files`."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100, description="Files per page")
    after: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,100}$",
                              description="A file id: only files older than it (the `last_id` "
                                          "of the previous page)")
    purpose: str | None = Field(default=None, pattern=PURPOSE.pattern,
                                description="Only files with this purpose (`output`: made from "
                                            "outputs)")


class FileList(BaseModel):
    """Body of `GET /v1/files`: the caller's unexpired files, newest first (OpenAI's list)."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
    next: str | None = Field(description="URL of the next (older) page; null on the last page")


class FileDeleted(BaseModel):
    """Body of `DELETE /v1/files/{file_id}`."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class FileReference(BaseModel):
    """What an output holds in place of the bytes of a binary value (a `data:` URI)."""

    file_id: str
    url: str = Field(description="Signed content link, usable without an API key until the "
                                 "prediction's result expires")
    content_type: str
    bytes: int


class FileUpload(BaseModel):
    """Body of `POST /v1/files`, as multipart/form-data."""

    file: bytes = Field(description="The content; the part's filename and Content-Type are kept")
    purpose: str = Field(pattern=PURPOSE.pattern, description="What the file is for, e.g. `user_data`")


def file_references(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """(path, file_id value) of every object with a `file_id` key in an input, outermost
    first; the value is as given (the caller checks that it names a file)."""
    if isinstance(value, dict):
        if "file_id" in value:
            return [(path, value["file_id"])]
        return [found for key, item in value.items()
                for found in file_references(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value)
                for found in file_references(item, (*path, index))]
    return []


def replace_references(value: Any, inline: Callable[[str], str]) -> Any:
    """`value` with each object holding a `file_id` replaced by `inline(file_id)`."""
    if isinstance(value, dict):
        if "file_id" in value:
            return inline(value["file_id"])
        return {key: replace_references(item, inline) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_references(item, inline) for item in value]
    return value


class ContentQuery(BaseModel):
    """Query of `GET /v1/files/{file_id}/content` when it is opened by a signed link."""

    expires: str | None = Field(default=None, description="Signed link: Unix seconds it works until")
    signature: str | None = Field(default=None, description="Signed link: its signature")

"""What a task result is made from: a succeeded prediction, and the shape errors of outputs.

A result is a pure function of the prediction (`Finished`) that ingest's poll route and
the dispatcher's webhook bodies both call; it raises OutputMismatch (or KeyError,
TypeError, ValueError, IndexError) when an output does not have the shape the kind's
models promise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.files import FileReference


@dataclass(frozen=True)
class Finished:
    """A succeeded prediction, as a result is made from it."""

    id: str
    model: str
    created_at: datetime
    input: dict[str, Any]
    output: Any
    options: dict[str, Any] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    """Content of the files the output references, by id, when the result needs them."""
    links_only: bool = False
    """True where file content is not at hand (webhooks, GET /v1/predictions): binary
    results are given as their links, whatever format the request asked for."""

    @property
    def created(self) -> int:
        """Unix seconds of creation (OpenAI's `created`)."""
        return int(self.created_at.timestamp())


class OutputMismatch(ValueError):
    """A model's output does not have the shape its kind's result is made from."""


def binary(value: Any, media: str) -> FileReference | str:
    """A binary output value: the file the dispatcher stored it as (a reference), or the
    `data:` URI it still is; OutputMismatch unless its media type starts with `media`."""
    if isinstance(value, dict):
        reference = FileReference.model_validate(value)
        if not reference.content_type.startswith(media):
            raise OutputMismatch(f"expected {media}…, got a file of {reference.content_type}")
        return reference
    head, comma, _ = str(value).partition(",")
    if not (head.startswith(f"data:{media}") and head.endswith(";base64") and comma):
        raise OutputMismatch(f"expected a {media}… file or base64 data URI")
    return str(value)

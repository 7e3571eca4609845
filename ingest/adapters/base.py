"""What a task adapter is: an OpenAI-style body → model input, and model output → result.

Both halves are pure. `request` validates what pydantic cannot (media that must decode, a
model that takes one text) and raises Unprocessable; the model's own input schema is
checked after it, its problems reported at the body fields named in `fields`. `result`
raises OutputMismatch (or KeyError, TypeError, ValueError, IndexError) when an output
does not have the shape the kind's models promise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from inferhook.catalog import CatalogEntry
from schemas.api import WebhookEvent
from schemas.files import FileReference
from schemas.tasks import TaskKind

Loc = tuple[str | int, ...]


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """A body model's config with `bodies` as its OpenAPI examples (schemathesis sends them)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(bodies)})


class TaskBody(BaseModel):
    """Fields every async request has: the model, and inferhook's webhook (an extension)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200, description="A model serving this kind (see GET /v1/models)")
    webhook: str | None = Field(default=None, max_length=2048,
                                description="inferhook extension: http(s) URL that receives signed "
                                            "webhooks of the prediction underneath")
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), max_length=16,
        description="inferhook extension: which events go to the webhook (default: all)")


@dataclass(frozen=True)
class ModelRequest:
    """What a body becomes: the model's input, and the options its result is shaped by."""

    input: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


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
    """Content of the files the output references, by id, when the adapter needs them."""

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


Body = TypeVar("Body", bound=TaskBody)


@dataclass(frozen=True)
class Adapter(Generic[Body]):
    """One task kind's pair of mappings, with the models documenting both sides."""

    kind: TaskKind
    body: type[Body]
    request: Callable[[Body, CatalogEntry], ModelRequest]
    result: Callable[[Finished], Any]
    """The result as JSON data (the OpenAI response body of the kind)."""
    result_model: type[BaseModel] | None = None
    """What `result` returns, for the OpenAPI document; None when it varies (text formats)."""
    fields: Mapping[str, Loc] = field(default_factory=dict)
    """Model input field → the body field it comes from (default: the same name)."""
    needs_files: Callable[[Mapping[str, Any]], bool] = lambda options: False
    """Whether, with these options, `result` needs the content of the output's files."""

    def body_loc(self, input_loc: Loc) -> Loc:
        """Where in the body a problem at `input_loc` (a path into the model input) lies."""
        if not input_loc:
            return ()
        head, *rest = input_loc
        return (*self.fields.get(str(head), (head,)), *rest)

"""What a task adapter is: an OpenAI-style body → model input (its result: schemas.results).

It is pure. `request` validates what pydantic cannot (media that must decode, a
model that takes one text) and raises Unprocessable; the model's own input schema is
checked after it, its problems reported at the body fields named in `fields`. The result
half lives in schemas.results (the dispatcher renders it into webhook bodies too); an
adapter reaches its kind's there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from inferhook.catalog import CatalogEntry
from schemas.api import WebhookEvent
from schemas.priority import Priority
from schemas.results import RESULTS, Finished
from schemas.tasks import TaskKind

Loc = tuple[str | int, ...]


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """A body model's config with `bodies` as its OpenAPI examples (schemathesis sends them)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(bodies)})


class TaskBody(BaseModel):
    """Fields every async request has: the model, and inferhook's extensions (the webhook and
    the priority of the prediction underneath)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200, description="A model serving this kind (see GET /v1/models)")
    webhook: str | None = Field(default=None, max_length=2048,
                                description="inferhook extension: http(s) URL that receives signed "
                                            "webhooks of the prediction underneath")
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), max_length=16,
        description="inferhook extension: which events go to the webhook (default: all)")
    priority: Priority = Field(
        default=Priority.DEFAULT,
        description="inferhook extension: interactive: served ahead of the model's other work; "
                    "batch: after it")


@dataclass(frozen=True)
class ModelRequest:
    """What a body becomes: the model's input, and the options its result is shaped by."""

    input: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


Body = TypeVar("Body", bound=TaskBody)


@dataclass(frozen=True)
class Adapter(Generic[Body]):
    """One task kind's request mapping, with the model documenting its body; the result
    mapping is the kind's in schemas.results."""

    kind: TaskKind
    body: type[Body]
    request: Callable[[Body, CatalogEntry], ModelRequest]
    fields: Mapping[str, Loc] = field(default_factory=dict)
    """Model input field → the body field it comes from (default: the same name)."""

    @property
    def result(self) -> Callable[[Finished], Any]:
        """The result as JSON data (the OpenAI response body of the kind)."""
        return RESULTS[self.kind].make

    @property
    def result_model(self) -> type[BaseModel] | None:
        """What `result` returns, for the OpenAPI document; None when it varies."""
        return RESULTS[self.kind].model

    def needs_files(self, options: Mapping[str, Any]) -> bool:
        """Whether, with these options, `result` needs the content of the output's files."""
        return RESULTS[self.kind].needs_files(options)

    def body_loc(self, input_loc: Loc) -> Loc:
        """Where in the body a problem at `input_loc` (a path into the model input) lies."""
        if not input_loc:
            return ()
        head, *rest = input_loc
        return (*self.fields.get(str(head), (head,)), *rest)

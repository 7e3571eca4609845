"""Typed views of what the API returns, mirroring its OpenAPI document.

They accept fields a newer server may add (ignored) so an old client keeps working.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

EVENT_PREFIX = "inferhook.prediction."


class Status(StrEnum):
    """Where a prediction is in its lifecycle: pending → started → succeeded | failed | canceled."""

    PENDING = "pending"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        """True for the final states; a prediction never leaves one."""
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)


class PredictionError(BaseModel):
    """Why a prediction failed or was canceled: a machine-readable reason and a message."""

    reason: str
    message: str


class PredictionUrls(BaseModel):
    """Links for one prediction."""

    get: str
    cancel: str
    events: str
    stream: str


class Prediction(BaseModel):
    """A prediction, as GET returns it and as webhooks carry it."""

    id: str
    model: str
    status: Status
    phase: str | None = None
    """While started: `loading` (cold start) or `running`."""
    input: dict[str, Any] | None = None
    output: Any = None
    error: PredictionError | None = None
    logs: str = ""
    webhook: str | None = None
    webhook_events_filter: list[str] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    deadline: datetime | None = None
    data_removed: bool = False
    metrics: dict[str, float] = Field(default_factory=dict)
    """Seconds: queue_time, load_time (cold starts), predict_time, total_time."""
    priority: str = "default"
    """`interactive`, `default` or `batch`."""
    queue_position: int | None = None
    """While pending (GET): about where it stands in its model's queue; 1 starts next."""
    estimated_start_at: datetime | None = None
    """While pending (GET): when it should start, at the model's recent throughput."""
    urls: PredictionUrls | None = None

    @property
    def done(self) -> bool:
        """True once the prediction is terminal."""
        return self.status.is_terminal()


class PredictionPage(BaseModel):
    """One page of `GET /v1/predictions`, newest first."""

    results: list[Prediction]
    next: str | None = None


class Event(BaseModel):
    """One lifecycle event of a prediction (from the history, the SSE stream or Kafka).

    `type` stays a string so event types added later pass through; `kind` is its last part
    (`created`, `started`, `logs`, `output`, `succeeded`, `failed`, `canceled`).
    """

    sequence: int
    type: str
    time: datetime
    data: dict[str, Any] = Field(default_factory=dict)
    prediction_id: str | None = None
    """Known from the SSE stream and from Kafka (`ce_subject`)."""
    id: str | None = None
    """The event id: the CloudEvents `ce_id`, which is also the `webhook-id` of its webhook
    (from Kafka and the history)."""
    source: str | None = None
    """The CloudEvents source (Kafka only)."""

    @property
    def kind(self) -> str:
        """The short type: `started`, `succeeded`, …"""
        return self.type.removeprefix(EVENT_PREFIX)

    @property
    def status(self) -> Status | None:
        """The status the prediction has after this event, or None when it does not change it."""
        kind = "pending" if self.kind == "created" else self.kind
        try:
            return Status(kind)
        except ValueError:
            return None

    @property
    def is_terminal(self) -> bool:
        """True for `succeeded`, `failed` and `canceled`."""
        return self.status is not None and self.status.is_terminal()


class ModelInfo(BaseModel):
    """A served model with its schemas and example input."""

    name: str
    version: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)
    example_input: dict[str, Any] | None = None


class WebhookSecret(BaseModel):
    """The secrets webhooks to this account are signed with."""

    key: str
    previous_key: str | None = None


class ProblemItem(BaseModel):
    """One problem with a request: where (`loc`) and what (`msg`)."""

    loc: list[str | int] = Field(default_factory=list)
    msg: str = ""


class Problem(BaseModel):
    """RFC 9457 problem details, the shape of every API error."""

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    errors: list[ProblemItem] = Field(default_factory=list)

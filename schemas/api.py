"""HTTP API request and response bodies (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import PredictionError
from schemas.status import Status
from schemas.topics import MODEL_NAME


class WebhookEvent(StrEnum):
    """Which events a prediction's webhook receives (`webhook_events_filter`)."""

    START = "start"
    OUTPUT = "output"
    LOGS = "logs"
    COMPLETED = "completed"


ALL_WEBHOOK_EVENTS = [e.value for e in WebhookEvent]


class PredictionCreate(BaseModel):
    """Body of `POST /v1/predictions`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_NAME.pattern, description="owner/name of a served model")
    input: dict[str, Any] = Field(description="Model input; checked against the model's input schema")
    webhook: str | None = Field(default=None, max_length=2048,
                                description="http(s) URL that receives signed webhooks")
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent),
        description="Which events are sent to the webhook (default: all)",
    )


class PredictionUrls(BaseModel):
    """Links for one prediction."""

    get: str
    cancel: str
    events: str
    stream: str


class Prediction(BaseModel):
    """A prediction as the API shows it, and as webhooks carry it."""

    id: str
    model: str
    status: Status
    phase: str | None = Field(default=None, description="While started: loading (cold start) or running")
    input: dict[str, Any] | None
    output: Any = None
    error: PredictionError | None = None
    logs: str = ""
    webhook: str | None = None
    webhook_events_filter: list[str] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    data_removed: bool = False
    metrics: dict[str, float] = Field(default_factory=dict)
    urls: PredictionUrls


class ModelInfo(BaseModel):
    """A model as `GET /v1/models` lists it."""

    name: str
    version: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    example_input: dict[str, Any] | None


class ModelList(BaseModel):
    """Body of `GET /v1/models`."""

    results: list[ModelInfo]


class WebhookSecret(BaseModel):
    """Body of `GET /v1/webhooks/default/secret`."""

    key: str


class ProblemItem(BaseModel):
    """One problem with the request: where (`loc`) and what (`msg`)."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details: the one error shape of every 4xx and 5xx."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] = Field(default_factory=list)


def prediction_urls(base_url: str, prediction_id: str) -> PredictionUrls:
    """Absolute links for one prediction under `base_url`."""
    root = f"{base_url}/v1/predictions/{prediction_id}"
    return PredictionUrls(get=root, cancel=f"{root}/cancel", events=f"{root}/events",
                          stream=f"{root}/stream")

"""HTTP API request and response bodies (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import PredictionError
from schemas.priority import Priority
from schemas.status import Status
from schemas.topics import MODEL_NAME


class WebhookEvent(StrEnum):
    """Which events a prediction's webhook receives (`webhook_events_filter`)."""

    START = "start"
    OUTPUT = "output"
    LOGS = "logs"
    COMPLETED = "completed"


ALL_WEBHOOK_EVENTS = [e.value for e in WebhookEvent]


class PredictionRequest(BaseModel):
    """Body of `POST /v1/models/{owner}/{name}/predictions` (the model is in the path)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="Model input; checked against the model's input schema")
    webhook: str | None = Field(default=None, max_length=2048,
                                description="http(s) URL that receives signed webhooks")
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), max_length=16,
        description="Which events are sent to the webhook (default: all; `completed` always is)",
    )
    priority: Priority = Field(
        default=Priority.DEFAULT,
        description="interactive: served ahead of the model's other work; batch: after it")


class PredictionCreate(PredictionRequest):
    """Body of `POST /v1/predictions`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "inferhook/spin", "input": {"milliseconds": 5}},
        {"model": "inferhook/spin", "input": {"milliseconds": 5}, "webhook_events_filter": ["completed"]},
    ]})
    model: str = Field(pattern=MODEL_NAME.pattern, description="owner/name of a served model")


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
    expires_at: datetime | None = Field(
        default=None, description="When input, output and logs are removed (completion + TTL)")
    deadline: datetime | None = Field(
        default=None, description="From Cancel-After: canceled (reason deadline) if not done by then")
    data_removed: bool = Field(default=False,
                               description="True once the TTL passed and input/output/logs are gone")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds: queue_time, load_time (cold start), predict_time, total_time; "
                    "attempts: runs it took (more than 1 after runs lost to infrastructure)")
    kind: str | None = Field(
        default=None, description="Task kind when made through /v1/async/<kind> (e.g. embeddings)")
    result: Any = Field(
        default=None, description="With a kind, once succeeded: the OpenAI-style result that "
                                  "GET /v1/async/<kind>/{id} shows (binary results as file links)")
    priority: Priority = Field(default=Priority.DEFAULT,
                               description="interactive, default or batch (see the create)")
    queue_position: int | None = Field(
        default=None, ge=1, description="While pending, on GET: about where it stands in its "
        "model's queue (1 starts next), counting priorities and turns between owners")
    estimated_start_at: datetime | None = Field(
        default=None, description="While pending, on GET: when it should start at the model's "
        "throughput over the last minute; null when none was observed")
    urls: PredictionUrls


class PredictionList(BaseModel):
    """Body of `GET /v1/predictions`: one page, newest first."""

    results: list[Prediction]
    next: str | None = Field(description="URL of the next (older) page; null on the last page")


class ListQuery(BaseModel):
    """Query parameters of `GET /v1/predictions`."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100, description="Predictions per page")
    cursor: str | None = Field(default=None, max_length=200,
                               description="Opaque position from a previous page's `next`")
    status: Status | None = Field(default=None, description="Only predictions in this status")
    model: str | None = Field(default=None, pattern=MODEL_NAME.pattern,
                              description="Only predictions of this model (owner/name)")
    created_after: datetime | None = Field(default=None,
                                           description="Only predictions created after this time")
    created_before: datetime | None = Field(default=None,
                                            description="Only predictions created before this time")


class EventsQuery(BaseModel):
    """Query parameters of `GET /v1/predictions/{id}/events`."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=-1, ge=-1, le=2**31 - 1,
                       description="Only events with a sequence number above this one")


class StreamQuery(EventsQuery):
    """Query parameters of `GET /v1/predictions/{id}/stream`."""

    queue: bool = Field(default=False, description=(
        "While the prediction is pending, also send `queue` messages (no id, not history) "
        "with its queue_position and estimated_start_at: at once, then instead of keep-alives"))


class HistoryEvent(BaseModel):
    """One lifecycle event of a prediction, as the read model recorded it."""

    id: str = Field(description="The event id: its webhook's `webhook-id`, its Kafka `ce_id` "
                                "and its id in the account feed (GET /v1/events)")
    sequence: int = Field(description="Strictly increasing per prediction; 0 is `created`")
    type: str = Field(description="CloudEvents type, e.g. inferhook.prediction.started")
    time: datetime
    data: dict[str, Any]


class EventList(BaseModel):
    """Body of `GET /v1/predictions/{id}/events`, oldest first."""

    results: list[HistoryEvent]


class Account(BaseModel):
    """Body of `GET /v1/account`: who the API key belongs to."""

    owner: str
    key_prefix: str = Field(description="The first characters of the key in use")
    key_created_at: datetime


class Health(BaseModel):
    """Body of `GET /healthz` and `GET /readyz`."""

    status: str = Field(description="ok, or unavailable")
    checks: dict[str, str] = Field(default_factory=dict,
                                   description="readyz: each dependency, ok or why not")


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


class JobStatus(StrEnum):
    """Where an async job is: its prediction's status in the gateway's four words."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @classmethod
    def of(cls, status: Status) -> JobStatus:
        """started is processing, succeeded completed, failed and canceled failed."""
        return _JOB_STATUS[status]

    def is_final(self) -> bool:
        """True once the job has its result or its error (the poll then answers 200)."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


_JOB_STATUS = {Status.PENDING: JobStatus.PENDING, Status.STARTED: JobStatus.PROCESSING,
               Status.SUCCEEDED: JobStatus.COMPLETED, Status.FAILED: JobStatus.FAILED,
               Status.CANCELED: JobStatus.FAILED}


class JobErrorDetail(BaseModel):
    """What went wrong, as OpenAI-style APIs say it."""

    message: str
    type: str = Field(description="invalid_request_error, server_error, timeout_error or canceled")
    code: str | None = Field(default=None, description="The prediction's failure reason")


class JobError(BaseModel):
    """`error` of a failed job."""

    error: JobErrorDetail


class AsyncJob(BaseModel):
    """An async job (`/v1/async/<kind>`): a prediction seen as the gateway's job.

    Fields that do not apply yet are left out: a pending job is `{id, status, created_at}`.
    """

    id: str = Field(description="The prediction id (also readable at /v1/predictions/{id})")
    status: JobStatus
    created_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = Field(
        default=None, description="Completion + result TTL; later, the job answers 404")
    status_code: int | None = Field(default=None, description="200, or the HTTP status of the failure")
    result: Any = Field(default=None, description="The OpenAI-style response body of the kind")
    error: JobError | None = None


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

"""Postgres table models (the read model, accounts, the webhook outbox and files).

Migrations in `migrations/` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from schemas.api import Prediction, prediction_urls
from schemas.events import PredictionError
from schemas.priority import Priority
from schemas.results import linked_result
from schemas.status import Status

TXID = "(pg_current_xact_id()::text)::bigint"
"""The current transaction's 64-bit id as a bigint (xid8 has no SQLAlchemy type)."""


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable,
                                                index=index))


class PredictionRow(SQLModel, table=True):
    """One prediction as the read model holds it."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_owner_created", "owner", "created_at"),
        # Open predictions only: the reaper's pass and GET /v1/queues read just these.
        Index("ix_predictions_open", "status", "model",
              postgresql_where=text("status IN ('pending', 'started')")),
        # Admission control counts one account's open predictions on each create.
        Index("ix_predictions_open_owner", "owner",
              postgresql_where=text("status IN ('pending', 'started')")),
        # ... and one API key's, when that cap is set.
        Index("ix_predictions_open_key", "api_key_id",
              postgresql_where=text("status IN ('pending', 'started')")),
        # A model's recent starts: its observed throughput, for queue ETAs.
        Index("ix_predictions_model_started", "model", "started_at"),
    )

    id: str = Field(primary_key=True)
    owner: str
    model: str
    status: str
    input: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    output: Any = Field(default=None, sa_column=Column(JSONB))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    logs: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    webhook: str | None = None
    webhook_events_filter: list[str] = Field(default_factory=list,
                                             sa_column=Column(JSONB, nullable=False))
    metrics: dict[str, float] = Field(default_factory=dict,
                                      sa_column=Column(JSONB, nullable=False,
                                                       server_default="{}"))
    created_at: datetime = _ts(nullable=False)
    started_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    expires_at: datetime | None = _ts()
    data_removed: bool = False
    last_sequence: int = Field(sa_column=Column(Integer, nullable=False))
    deadline: datetime | None = _ts()
    result_ttl_seconds: float | None = None
    phase: str | None = None
    kind: str | None = None
    """The async API's task kind (schemas.tasks.TaskKind) it was made through; None otherwise."""
    task_options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    """Request options that shape the kind's result (e.g. encoding_format), not model input."""
    priority: str = Field(default="default", sa_column=Column(
        String, nullable=False, server_default="default"))
    """schemas.priority.Priority: interactive, default or batch."""
    api_key_id: str | None = None
    """The API key it was made with (its `api_keys.key_hash`); None for predictions made
    before keys were recorded. Never shown by the API."""

    def to_api(self, base_url: str) -> Prediction:
        """The prediction as the API and webhooks show it."""
        return api_prediction(self, base_url)


class PredictionFields(Protocol):
    """What the API shows of a prediction: a `PredictionRow`, or the projector's row."""

    @property
    def id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def phase(self) -> str | None: ...
    @property
    def input(self) -> dict[str, Any] | None: ...
    @property
    def output(self) -> Any: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def logs(self) -> str: ...
    @property
    def webhook(self) -> str | None: ...
    @property
    def webhook_events_filter(self) -> list[str]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def deadline(self) -> datetime | None: ...
    @property
    def data_removed(self) -> bool: ...
    @property
    def metrics(self) -> dict[str, float]: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def task_options(self) -> dict[str, Any] | None: ...
    @property
    def priority(self) -> str: ...


def api_prediction(row: PredictionFields, base_url: str) -> Prediction:
    """The prediction as the API and webhooks show it (no table model is built: the
    projector renders every webhook body through this). A succeeded prediction of a task
    kind carries its kind's result beside the output (schemas.results)."""
    result = None
    if row.kind is not None and row.status == Status.SUCCEEDED and not row.data_removed:
        result = linked_result(row.kind, id=row.id, model=row.model, created_at=row.created_at,
                               input=row.input, output=row.output, options=row.task_options)
    return Prediction(
        id=row.id, model=row.model, status=Status(row.status),
        phase=row.phase if row.status == Status.STARTED else None, input=row.input,
        output=row.output,
        error=PredictionError.model_validate(row.error) if row.error else None,
        logs=row.logs, webhook=row.webhook,
        webhook_events_filter=row.webhook_events_filter, created_at=row.created_at,
        started_at=row.started_at, completed_at=row.completed_at,
        expires_at=row.expires_at, deadline=row.deadline, data_removed=row.data_removed,
        metrics=row.metrics, kind=row.kind, result=result, priority=Priority(row.priority),
        urls=prediction_urls(base_url, row.id),
    )


class PredictionEventRow(SQLModel, table=True):
    """The history of a prediction: every event the projector accepted, once.

    Also the account event feed (store.feed): rows are read per owner in (`txid`,
    `position`) order, which never lets a later commit land before a position already read.
    """

    __tablename__ = "prediction_events"
    __table_args__ = (Index("ix_prediction_events_feed", "owner", "txid", "position"),)

    prediction_id: str = Field(primary_key=True)
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True))
    type: str
    time: datetime = _ts(nullable=False)
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    owner: str
    model: str
    position: int | None = Field(default=None, sa_column=Column(
        BigInteger, Identity(always=True), nullable=False, unique=True))
    """Insert order, from an identity (never reused, survives restarts)."""
    txid: int | None = Field(default=None, sa_column=Column(
        BigInteger, nullable=False, server_default=text(TXID)))
    """The writing transaction's 64-bit id (pg_current_xact_id)."""


class ParkedEventRow(SQLModel, table=True):
    """An event of a prediction whose `created` the projector has not seen yet.

    Kept in the projector's transaction and applied, in sequence order, once the
    prediction is known (see dispatcher.fold); the record as it came from Kafka.
    """

    __tablename__ = "parked_events"

    prediction_id: str = Field(primary_key=True)
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True))
    headers: list[list[str]] = Field(sa_column=Column(JSONB, nullable=False))
    """The CloudEvents attributes, as [name, value] pairs."""
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    parked_at: datetime = _ts(nullable=False)


class ApiKeyRow(SQLModel, table=True):
    """An API key, stored as its SHA-256 digest."""

    __tablename__ = "api_keys"

    key_hash: str = Field(primary_key=True)
    owner: str = Field(index=True)
    prefix: str
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _ts()


class WebhookSecretRow(SQLModel, table=True):
    """The webhook signing secret of one owner (`whsec_…`)."""

    __tablename__ = "webhook_secrets"

    owner: str = Field(primary_key=True)
    secret: str
    created_at: datetime = _ts(nullable=False)
    previous_secret: str | None = None
    """The secret before the last rotation; also signs until `previous_expires_at`."""
    previous_expires_at: datetime | None = _ts()
    signing_key: str | None = None
    """ed25519 private key (`whsk_…`) for `v1a` signatures, made when first needed."""


class WebhookDeliveryRow(SQLModel, table=True):
    """The outbox: one row per webhook message, kept until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
                      Index("ix_webhook_deliveries_owner_state", "owner", "state", "id"),
                      # One event fans out to many endpoints under one webhook-id (as Svix does).
                      UniqueConstraint("webhook_id", "endpoint_id",
                                       name="uq_webhook_deliveries_destination"),
                      Index("ix_webhook_deliveries_endpoint_id", "endpoint_id", "state", "id",
                            postgresql_where=text("endpoint_id <> ''")))

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True,
                                                          autoincrement=True))
    webhook_id: str
    prediction_id: str = Field(index=True)
    owner: str
    url: str
    event_type: str
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts()
    last_status: int | None = None
    last_error: str | None = None
    endpoint: str = ""
    """scheme://host:port of `url`: the unit of concurrency caps and circuit breaking."""
    claim_id: str | None = None
    """The lease holder while an attempt is in flight; `next_attempt_at` is then the lease end."""
    scheduled_at: datetime = _ts(nullable=False)
    """When the first attempt was due (output/logs throttling spaces these out)."""
    endpoint_id: str = Field(default="", sa_column=Column(Text, nullable=False,
                                                          server_default=""))
    """The account endpoint (`ep_…`) this fan-out delivery goes to; '' for a prediction's
    own `webhook`."""


class WebhookEndpointRow(SQLModel, table=True):
    """An account-level webhook endpoint: receives every matching event of its owner."""

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True)
    owner: str = Field(index=True)
    url: str
    description: str = ""
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    """CloudEvents types it receives; empty = all."""
    models: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    """Models (owner/name) whose predictions' events it receives; empty = all."""
    rate_limit: int | None = None
    """Deliveries per second at most; None = no limit."""
    ordered: bool = False
    """Per prediction, an event is sent only once the one before it is delivered or failed."""
    payload: str = "full"
    secret: str
    previous_secret: str | None = None
    previous_expires_at: datetime | None = _ts()
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    disabled_at: datetime | None = _ts()
    disabled_reason: str | None = None
    failing_since: datetime | None = _ts()
    """First failed attempt since the last success; None while healthy."""
    warned: bool = False
    """`inferhook.endpoint.failing` was announced for the current failing spell."""
    rate_slot_at: datetime | None = _ts()
    """With `rate_limit`: the next free send slot (slots are 1/rate_limit s apart, shared by
    every dispatcher)."""


class IdempotencyKeyRow(SQLModel, table=True):
    """A reserved `Idempotency-Key`: which body it was used with and the prediction it made."""

    __tablename__ = "idempotency_keys"

    owner: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    body_hash: str
    prediction_id: str
    created_at: datetime = _ts(nullable=False)
    committed: bool = False
    """True once the prediction is durable in Kafka; until then the reservation may be taken over."""


class WebhookAttemptRow(SQLModel, table=True):
    """One HTTP attempt of one webhook delivery, as `GET …/webhooks` shows it."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True,
                                                          autoincrement=True))
    delivery_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    prediction_id: str = Field(index=True)
    webhook_id: str
    attempt: int
    started_at: datetime = _ts(nullable=False)
    status: int | None = None
    """HTTP status code, or None when no response came (timeout, refused, reset)."""
    latency_ms: float
    error: str | None = None
    response: str = ""
    """The first 4 KiB of the response body."""


class DispatcherOffsetRow(SQLModel, table=True):
    """The next event offset to project, per partition, committed with the projection itself."""

    __tablename__ = "dispatcher_offsets"

    topic: str = Field(primary_key=True)
    partition: int = Field(primary_key=True)
    next_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _ts(nullable=False)


class FileRow(SQLModel, table=True):
    """A stored file: an upload (`POST /v1/files`) or a binary output of a prediction.

    Deleted by the retention sweep once `expires_at` has passed (store.files).
    """

    __tablename__ = "files"

    id: str = Field(primary_key=True)
    owner: str
    purpose: str
    """What the owner said it is for (uploads), or `output`."""
    filename: str
    content_type: str
    """A bare media type (`image/png`): the `data:` URI an input naming the file gets."""
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False, index=True)
    prediction_id: str | None = None
    """The prediction whose output this file is; None for uploads."""

"""Prediction lifecycle events: CloudEvents 1.0 in Kafka binary mode.

Attributes travel as headers (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`, `ce_time`,
`ce_subject` = prediction id, `ce_sequence`), the data as a JSON value, keyed by the
prediction id. The same `created` event is written to the events topic and to the model's
request topic, except that the request's input has the files it names inlined as `data:`
URIs (schemas.files); the events topic keeps the references.

Sequence numbers are strictly increasing per prediction: ingest writes `created` as 0,
the executor running the prediction numbers its events 1, 2, … in the order it emits them.
A re-run after an executor crash numbers from 1 again, so whichever outcome reaches the
read model first wins and the other is a duplicate. Events written by someone other than
the executor after a prediction may have started (cancel, deadlines, the reaper) use
`OUT_OF_BAND_SEQUENCE`, which outranks anything an executor emits.

The executor's numbers have fixed slots so that every run of one prediction, cold or warm,
crashed or not, lines up: `started` with phase `loading` is `LOADING_SEQUENCE` (1, cold
runs only), `started` with phase `running` is `RUNNING_SEQUENCE` (2), logs and output
events count on from 3, and the outcome (`succeeded`/`failed`/`canceled`) is always
`TERMINAL_SEQUENCE`. So the outcome of a re-run outranks the partial events of a run that
crashed, and both runs' outcomes share one sequence (one terminal webhook id). The
supervisor fills the `loading` slot itself for requests waiting on a model it is starting
(cli.loading): the same id and sequence, so it and the executor's are one event.

One event id everywhere: an event's `ce_id` is `event_id(prediction id, sequence)`, which is
also its webhook's `webhook-id` and its id in the account event feed (`GET /v1/events`).
Being a function of the prediction and the sequence, it survives replays, retries and
re-runs; two records with one id are one event as far as the read model goes (the first
applied wins, the other is a duplicate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, Field

from schemas.priority import Priority
from schemas.status import FailureReason, Status
from schemas.tasks import TaskKind

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
CREATED_SEQUENCE = 0
OUT_OF_BAND_SEQUENCE = 2**31 - 1
LOADING_SEQUENCE = 1
RUNNING_SEQUENCE = 2
TERMINAL_SEQUENCE = OUT_OF_BAND_SEQUENCE - 1


class EventType(StrEnum):
    """CloudEvents `type` of each lifecycle event."""

    CREATED = "inferhook.prediction.created"
    STARTED = "inferhook.prediction.started"
    LOGS = "inferhook.prediction.logs"
    OUTPUT = "inferhook.prediction.output"
    SUCCEEDED = "inferhook.prediction.succeeded"
    FAILED = "inferhook.prediction.failed"
    CANCELED = "inferhook.prediction.canceled"
    CANCEL_REQUESTED = "inferhook.prediction.cancel_requested"
    """On the control topic only: executors stop (or never start) this prediction."""
    ATTEMPT_STARTED = "inferhook.prediction.attempt_started"
    """On the control topic only: an executor begins attempt N of this prediction (written
    durably before the run, so a run lost to a crash still counts; see executors.attempts)."""

    @property
    def status(self) -> Status | None:
        """The status a prediction has after this event, or None if it does not change it."""
        return _STATUS_AFTER.get(self)


_STATUS_AFTER = {
    EventType.CREATED: Status.PENDING,
    EventType.STARTED: Status.STARTED,
    EventType.SUCCEEDED: Status.SUCCEEDED,
    EventType.FAILED: Status.FAILED,
    EventType.CANCELED: Status.CANCELED,
}


def event_id(prediction_id: str, sequence: int) -> str:
    """The id of a prediction's event number `sequence`: its `ce_id`, its `webhook-id` (a
    Standard Webhooks `msg_` id) and its feed id, the same on every replay and retry."""
    return f"msg_{prediction_id.replace('-', '')}_{sequence}"


def utcnow() -> datetime:
    """Timezone-aware now, the only clock events use."""
    return datetime.now(UTC)


class PredictionError(BaseModel):
    """Why a prediction failed or was canceled."""

    reason: FailureReason
    message: str


class Created(BaseModel):
    """Data of `created`: everything needed to run the prediction and to show it."""

    owner: str
    model: str
    input: dict[str, Any]
    webhook: str | None = None
    webhook_events_filter: list[str] = Field(default_factory=list)
    created_at: datetime
    deadline: datetime | None = None
    """From `Cancel-After`: a prediction not finished by then ends `canceled` (reason deadline)."""
    result_ttl_seconds: float | None = None
    """How long input/output are kept after completion; None = the server default."""
    kind: TaskKind | None = None
    """The async API's task kind when made through `/v1/async/<kind>`; None otherwise."""
    task_options: dict[str, Any] | None = None
    """With `kind`: request options that shape the result (not model input), e.g. top_n."""
    priority: Priority = Priority.DEFAULT
    """Which of the model's request topics it went to (schemas.topics)."""
    api_key_id: str | None = None
    """The API key it was made with (the key's stored digest, never the key), for the
    per-key cap on predictions in flight; None in events written before keys were recorded."""


class Started(BaseModel):
    """Data of `started`; a cold model sends one with phase `loading`, then one with `running`."""

    started_at: datetime
    phase: str = "running"
    load_time: float | None = None
    """Seconds spent loading the model for this prediction (cold start), when known."""
    attempt: int | None = None
    """Which attempt this is (1 for the first run; more after runs lost to infrastructure)."""


class Logs(BaseModel):
    """Data of `logs`: lines to append to the prediction's log."""

    logs: str


class Output(BaseModel):
    """Data of `output`: the output so far (replaces the previous one)."""

    output: Any


class Completed(BaseModel):
    """Data of `succeeded`, `failed` and `canceled`."""

    completed_at: datetime
    output: Any = None
    error: PredictionError | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class CancelRequested(BaseModel):
    """Data of `cancel_requested` (control topic)."""

    requested_at: datetime
    reason: FailureReason = FailureReason.CANCELED_BY_USER


class AttemptStarted(BaseModel):
    """Data of `attempt_started` (control topic)."""

    attempt: int = Field(ge=1)
    started_at: datetime


EventData = Created | Started | Logs | Output | Completed | CancelRequested | AttemptStarted

_DATA_MODEL: dict[EventType, type[BaseModel]] = {
    EventType.CREATED: Created,
    EventType.STARTED: Started,
    EventType.LOGS: Logs,
    EventType.OUTPUT: Output,
    EventType.SUCCEEDED: Completed,
    EventType.FAILED: Completed,
    EventType.CANCELED: Completed,
    EventType.CANCEL_REQUESTED: CancelRequested,
    EventType.ATTEMPT_STARTED: AttemptStarted,
}


class DecodeError(ValueError):
    """A Kafka record is not a valid inferhook event."""


class PredictionEvent(BaseModel):
    """One lifecycle event of one prediction."""

    id: str
    source: str
    type: EventType
    time: datetime
    subject: str
    sequence: int
    data: EventData

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers in CloudEvents binary mode."""
        return [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.value.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_sequence", str(self.sequence).encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]

    def value(self) -> bytes:
        """The Kafka record value: the event data as JSON."""
        return orjson.dumps(self.data.model_dump(mode="json"))

    def key(self) -> bytes:
        """The Kafka record key: the prediction id."""
        return self.subject.encode()

    @classmethod
    def decode(cls, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
               value: bytes | None) -> PredictionEvent:
        """Read an event back from a Kafka record; raise DecodeError when it is not one."""
        attrs = {name: raw.decode("utf-8", "replace") for name, raw in headers}
        try:
            if attrs.get("ce_specversion") != SPEC_VERSION:
                raise DecodeError(f"not a CloudEvents {SPEC_VERSION} record")
            event_type = EventType(attrs["ce_type"])
            data = _DATA_MODEL[event_type].model_validate_json(value or b"")
            return cls(
                id=attrs["ce_id"], source=attrs["ce_source"], type=event_type,
                time=datetime.fromisoformat(attrs["ce_time"]), subject=attrs["ce_subject"],
                sequence=int(attrs["ce_sequence"]), data=data,
            )
        except DecodeError:
            raise
        except (KeyError, ValueError) as exc:
            raise DecodeError(str(exc)) from exc


def cancel_request(prediction_id: str, *, source: str, reason: FailureReason, nonce: str,
                   now: datetime) -> PredictionEvent:
    """A `cancel_requested` for the control topic (`nonce` keeps the event ids distinct)."""
    return PredictionEvent(
        id=f"{prediction_id}-cancel-{nonce}", source=source, type=EventType.CANCEL_REQUESTED,
        time=now, subject=prediction_id, sequence=OUT_OF_BAND_SEQUENCE,
        data=CancelRequested(requested_at=now, reason=reason))


def attempt_started(prediction_id: str, attempt: int, *, source: str, now: datetime
                    ) -> PredictionEvent:
    """An `attempt_started` for the control topic: `source` begins run number `attempt`."""
    return PredictionEvent(
        id=f"{prediction_id}-attempt-{attempt}", source=source, type=EventType.ATTEMPT_STARTED,
        time=now, subject=prediction_id, sequence=attempt,
        data=AttemptStarted(attempt=attempt, started_at=now))


def out_of_band_outcome(prediction_id: str, *, source: str, event_type: EventType,
                        error: PredictionError, now: datetime) -> PredictionEvent:
    """A terminal event written by someone other than the executor (cancel, the reaper).

    Its OUT_OF_BAND_SEQUENCE outranks every executor event, so it wins unless the
    prediction is already terminal.
    """
    return PredictionEvent(
        id=event_id(prediction_id, OUT_OF_BAND_SEQUENCE), source=source, type=event_type, time=now,
        subject=prediction_id, sequence=OUT_OF_BAND_SEQUENCE,
        data=Completed(completed_at=now, error=error))

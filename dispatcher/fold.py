"""The projection rule, as a pure function of the current rows and a batch of events.

An event is applied when its sequence is newer than the prediction's `last_sequence` and
the prediction is not terminal; anything else (duplicates, replays, stale events, events
after the end) changes nothing. `fold` walks a batch in arrival order and returns what to
write: the changed rows (new ones whole, existing ones as changes), the history, the
predictions to NOTIFY about, and the webhooks the applied events call for, each with the
prediction object as it stood right after its event.

An event of a prediction the read model does not know yet (its `created` has not been
projected) is never dropped: it is *held*. The caller keeps held events durably (the
`parked_events` table, in the batch's transaction) and passes them back with any later
batch that touches the prediction. Held events are applied, in sequence order, as soon as
the prediction is known: right after its `created`, or at the start of a batch when a row
exists (ingest writes the pending row itself at create time). So the outcome and the
order of the webhooks do not depend on the order in which a prediction's events arrive
before its `created`, nor on how arrivals are cut into batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.api import WebhookEvent
from schemas.events import Completed, Created, EventType, Logs, Output, PredictionEvent, Started
from schemas.feed import feed_notice
from schemas.status import Status
from schemas.tables import PredictionRow, api_prediction
from schemas.webhooks import webhook_id

log = logging.getLogger(__name__)

DEFAULT_RESULT_TTL = 3600.0
"""Seconds input and output are kept after completion when the create did not say."""

WEBHOOK_EVENT = {
    EventType.STARTED: WebhookEvent.START,
    EventType.OUTPUT: WebhookEvent.OUTPUT,
    EventType.LOGS: WebhookEvent.LOGS,
    EventType.SUCCEEDED: WebhookEvent.COMPLETED,
    EventType.FAILED: WebhookEvent.COMPLETED,
    EventType.CANCELED: WebhookEvent.COMPLETED,
}
COLUMNS = tuple(PredictionRow.model_fields)
"""The read model's columns: `Current` has a field for each (a test checks)."""
PROGRESS = frozenset({EventType.OUTPUT, EventType.LOGS})
"""Event types whose webhooks are throttled and coalesced."""


def result_expires_at(completed_at: datetime, ttl_seconds: float | None) -> datetime:
    """When the data of a prediction completed at `completed_at` expires: after its result
    TTL, or DEFAULT_RESULT_TTL when the create did not say."""
    return completed_at + timedelta(seconds=DEFAULT_RESULT_TTL if ttl_seconds is None else ttl_seconds)


@dataclass
class Current:
    """One prediction as the projector holds it while folding a batch.

    `input`, `output` and `logs` are whole only when `full` (the row has a webhook, or is
    new in this batch); otherwise the write-back uses the deltas (`logs_delta`,
    `metrics_delta`, `output_set`) against what Postgres holds.
    """

    id: str
    owner: str
    model: str
    status: str
    webhook: str | None
    webhook_events_filter: list[str]
    created_at: datetime
    last_sequence: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    deadline: datetime | None = None
    result_ttl_seconds: float | None = None
    phase: str | None = None
    kind: str | None = None
    task_options: dict[str, Any] | None = None
    priority: str = "default"
    api_key_id: str | None = None
    data_removed: bool = False
    error: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    input: dict[str, Any] | None = None
    output: Any = None
    logs: str = ""
    full: bool = False
    new: bool = False
    changed: bool = False
    output_set: bool = False
    logs_delta: str = ""
    metrics_delta: dict[str, float] = field(default_factory=dict)
    fanout: bool = False
    """Its owner has account webhook endpoints: every applied event is `published` (and the
    row is `full`, since the bodies need the whole prediction)."""

    def values(self, *, whole: bool) -> dict[str, Any]:
        """Every column of the row (and `output_set`) for the write-back: `input`, `logs` and
        `metrics` whole for a new row, else as deltas (`input` is never rewritten)."""
        values = {name: getattr(self, name) for name in COLUMNS}
        if not whole:
            values.update(input=None, logs=self.logs_delta, metrics=self.metrics_delta)
        values["output_set"] = self.output_set
        return values

    def api_body(self, base_url: str) -> bytes:
        """The prediction object as GET returns it (the webhook body)."""
        return api_prediction(self, base_url).model_dump_json().encode()


@dataclass(frozen=True)
class Intent:
    """A webhook an applied event calls for."""

    prediction_id: str
    owner: str
    url: str
    event_type: EventType
    sequence: int
    body: bytes

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.prediction_id, self.sequence)

    @property
    def progress(self) -> bool:
        return self.event_type in PROGRESS

    @property
    def terminal(self) -> bool:
        status = self.event_type.status
        return status is not None and status.is_terminal()


@dataclass(frozen=True)
class HistoryEntry:
    """One applied event, for `prediction_events`."""

    prediction_id: str
    sequence: int
    type: str
    time: datetime
    data: bytes
    owner: str
    model: str


@dataclass(frozen=True)
class Held:
    """An event waiting for its prediction's `created`, with its data as it came from Kafka."""

    event: PredictionEvent
    raw: bytes


@dataclass(frozen=True)
class Published:
    """An applied event of a prediction whose owner has account endpoints (dispatcher.fanout)."""

    prediction_id: str
    owner: str
    model: str
    event_type: str
    sequence: int
    status: str
    body: bytes
    """The prediction object right after the event (the `full` payload)."""


@dataclass
class Folded:
    """What one batch changes."""

    rows: dict[str, Current]
    history: list[HistoryEntry] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    skipped: int = 0
    park: list[Held] = field(default_factory=list)
    """Events of this batch to keep until their prediction is known."""
    unpark: set[str] = field(default_factory=set)
    """Predictions whose stored held events were applied now (remove them)."""

    @property
    def changed(self) -> list[Current]:
        return [row for row in self.rows.values() if row.changed]

    def notifications(self) -> list[str]:
        """One `<id>:<status>` NOTIFY payload per changed prediction."""
        return [f"{row.id}:{row.status}" for row in self.changed]

    def feed_notices(self) -> list[str]:
        """One feed NOTIFY payload per owner whose event feed grew (schemas.feed)."""
        return [feed_notice(owner) for owner in sorted({h.owner for h in self.history})]


def fold(rows: dict[str, Current], events: Sequence[PredictionEvent], base_url: str,
         raw: Sequence[bytes] | None = None, held: dict[str, list[Held]] | None = None,
         subscribed: frozenset[str] = frozenset()) -> Folded:
    """Apply `events` in order to `rows` (changed in place); see the module docstring.

    `raw`, when given, holds each event's data exactly as it came from Kafka (kept in the
    history as is, instead of encoding the data again). `held` holds the stored held
    events of the batch's predictions (from earlier batches). `subscribed` names the owners
    with account endpoints, for rows this batch creates (rows passed in carry `fanout`).
    """
    out = Folded(rows)
    waiting = {pid: list(events) for pid, events in (held or {}).items() if events}
    stored = set(waiting)
    fresh: dict[str, list[Held]] = {}

    def release(pid: str) -> None:
        """The prediction is known: apply what waited for it, in sequence order."""
        if pid in stored:
            out.unpark.add(pid)
        for item in sorted(waiting.pop(pid, ()), key=lambda h: h.event.sequence):
            _apply(out, rows[pid], item.event, item.raw, base_url)
        fresh.pop(pid, None)

    for pid in [pid for pid in waiting if pid in rows]:
        release(pid)
    for index, event in enumerate(events):
        data = raw[index] if raw is not None else event.value()
        current = rows.get(event.subject)
        if isinstance(event.data, Created):
            applied = _created(rows, current, event, event.data, subscribed)
            _record(out, applied, event, data)
            if applied:
                _publish(out, rows[event.subject], event, base_url)
                _announce(out, rows[event.subject], event, base_url)
            release(event.subject)
        elif current is None:
            item = Held(event, data)
            waiting.setdefault(event.subject, []).append(item)
            fresh.setdefault(event.subject, []).append(item)
        else:
            _apply(out, current, event, data, base_url)
    out.park = [item for items in fresh.values() for item in items]
    if out.park:
        log.info("holding %d events of %d predictions not known yet", len(out.park), len(fresh))
    return out


def _apply(out: Folded, current: Current, event: PredictionEvent, data: bytes,
           base_url: str) -> None:
    applied = _update(current, event, base_url, out.intents)
    _record(out, applied, event, data)
    if applied:
        _publish(out, current, event, base_url)


def _publish(out: Folded, current: Current, event: PredictionEvent, base_url: str) -> None:
    if current.fanout:
        out.published.append(Published(current.id, current.owner, current.model,
                                       event.type.value, event.sequence, current.status,
                                       current.api_body(base_url)))


def _announce(out: Folded, current: Current, event: PredictionEvent, base_url: str) -> None:
    """A pending prediction whose filter has `start` gets a `start` webhook at create time,
    as Replicate sends one (the projector fills in its queue place: dispatcher.queueplace),
    and another when it starts. A replayed `created` makes the same webhook-id again, which
    the outbox keeps once."""
    if (event.type is EventType.CREATED and current.webhook
            and current.status == Status.PENDING
            and WebhookEvent.START.value in current.webhook_events_filter):
        out.intents.append(Intent(current.id, current.owner, current.webhook, event.type,
                                  event.sequence, current.api_body(base_url)))


def _record(out: Folded, applied: bool, event: PredictionEvent, data: bytes) -> None:
    if applied:
        row = out.rows[event.subject]
        out.history.append(HistoryEntry(event.subject, event.sequence, event.type.value,
                                        event.time, data, row.owner, row.model))
    else:
        out.skipped += 1


def _created(rows: dict[str, Current], current: Current | None, event: PredictionEvent,
             created: Created, subscribed: frozenset[str]) -> bool:
    if current is None:
        rows[event.subject] = Current(
            id=event.subject, owner=created.owner, model=created.model,
            status=Status.PENDING.value, webhook=created.webhook,
            webhook_events_filter=list(created.webhook_events_filter),
            created_at=created.created_at, last_sequence=event.sequence,
            deadline=created.deadline, result_ttl_seconds=created.result_ttl_seconds,
            kind=created.kind, task_options=created.task_options,
            priority=created.priority.value, api_key_id=created.api_key_id,
            input=created.input, full=True, new=True,
            changed=True, fanout=created.owner in subscribed)
        return True
    # The row exists: ingest wrote it at create time (read-your-writes), or this is a replay.
    # Copy what ingest may not have written; the history insert is idempotent.
    if current.status == Status.PENDING and current.last_sequence <= event.sequence and (
            current.deadline != created.deadline
            or current.result_ttl_seconds != created.result_ttl_seconds):
        current.deadline = created.deadline
        current.result_ttl_seconds = created.result_ttl_seconds
        current.changed = True
    return True


def _update(current: Current, event: PredictionEvent, base_url: str,
            intents: list[Intent]) -> bool:
    if event.sequence <= current.last_sequence or Status(current.status).is_terminal():
        return False
    data = event.data
    was = current.status
    status = event.type.status
    if status is not None:
        current.status = status.value
    if isinstance(data, Started):
        current.started_at = current.started_at or data.started_at
        current.phase = data.phase
        if data.load_time is not None:
            _merge_metrics(current, {"load_time": data.load_time})
    elif isinstance(data, Logs):
        current.logs += data.logs
        current.logs_delta += data.logs
    elif isinstance(data, Output):
        current.output, current.output_set = data.output, True
    elif isinstance(data, Completed):
        current.completed_at = data.completed_at
        current.expires_at = result_expires_at(data.completed_at, current.result_ttl_seconds)
        if data.error is not None:
            current.error = data.error.model_dump(mode="json")
        if data.output is not None:
            current.output, current.output_set = data.output, True
        _merge_metrics(current, data.metrics)
    current.last_sequence = event.sequence
    current.changed = True
    wanted = WEBHOOK_EVENT.get(event.type)
    if current.webhook and wanted and (
            wanted is WebhookEvent.COMPLETED
            or (wanted.value in current.webhook_events_filter
                and not (wanted is WebhookEvent.START and was != Status.PENDING))):
        intents.append(Intent(current.id, current.owner, current.webhook, event.type,
                              event.sequence, current.api_body(base_url)))
    return True


def _merge_metrics(current: Current, metrics: dict[str, float]) -> None:
    current.metrics = {**current.metrics, **metrics}
    current.metrics_delta = {**current.metrics_delta, **metrics}

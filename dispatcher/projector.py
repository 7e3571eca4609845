"""Projects inferhook.events into the Postgres read model, once per event.

Each event is applied only if its sequence is newer than the prediction's
`last_sequence` and the prediction is not terminal, so replays, duplicates and stale
events change nothing. Applied events go into the history and, when the prediction has
a webhook that wants them, into the webhook outbox, in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from inferhook.db import PREDICTION_CHANGED
from schemas.api import WebhookEvent
from schemas.events import Completed, Created, EventType, Logs, Output, PredictionEvent, Started
from schemas.status import TERMINAL
from schemas.tables import PredictionRow

log = logging.getLogger(__name__)

TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in TERMINAL)

INSERT_CREATED = text("""
INSERT INTO predictions (id, owner, model, status, input, webhook, webhook_events_filter,
                         created_at, last_sequence, logs, metrics, data_removed, deadline,
                         result_ttl_seconds)
VALUES (:id, :owner, :model, 'pending', CAST(:input AS jsonb), :webhook,
        CAST(:filter AS jsonb), :created_at, :sequence, '', '{}', false, :deadline,
        :result_ttl_seconds)
ON CONFLICT (id) DO NOTHING
""")

UPDATE = text(f"""
UPDATE predictions SET
  status = COALESCE(:status, status),
  started_at = COALESCE(started_at, :started_at),
  phase = COALESCE(:phase, phase),
  completed_at = COALESCE(:completed_at, completed_at),
  expires_at = CASE WHEN CAST(:completed_at AS timestamptz) IS NULL THEN expires_at
    ELSE CAST(:completed_at AS timestamptz)
         + make_interval(secs => COALESCE(result_ttl_seconds, :default_ttl)) END,
  output = CASE WHEN :set_output THEN CAST(:output AS jsonb) ELSE output END,
  error = COALESCE(CAST(:error AS jsonb), error),
  logs = logs || :logs,
  metrics = metrics || CAST(:metrics AS jsonb),
  last_sequence = :sequence
WHERE id = :id AND last_sequence < :sequence AND status NOT IN ({TERMINAL_SQL})
RETURNING *
""")

INSERT_HISTORY = text("""
INSERT INTO prediction_events (prediction_id, sequence, type, time, data)
VALUES (:id, :sequence, :type, :time, CAST(:data AS jsonb))
ON CONFLICT DO NOTHING
""")

NOTIFY = text(f"SELECT pg_notify('{PREDICTION_CHANGED}', :payload)")

ENQUEUE = text("""
INSERT INTO webhook_deliveries (webhook_id, prediction_id, owner, url, event_type, sequence,
                                body, state, attempts, next_attempt_at, created_at)
VALUES (:webhook_id, :prediction_id, :owner, :url, :event_type, :sequence, :body,
        'pending', 0, now(), now())
ON CONFLICT (webhook_id) DO NOTHING
""")

WEBHOOK_EVENT = {
    EventType.STARTED: WebhookEvent.START,
    EventType.OUTPUT: WebhookEvent.OUTPUT,
    EventType.LOGS: WebhookEvent.LOGS,
    EventType.SUCCEEDED: WebhookEvent.COMPLETED,
    EventType.FAILED: WebhookEvent.COMPLETED,
    EventType.CANCELED: WebhookEvent.COMPLETED,
}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def update_params(event: PredictionEvent) -> dict[str, Any]:
    """Column values one non-created event sets (None leaves a column as it is)."""
    data = event.data
    params: dict[str, Any] = {
        "id": event.subject, "sequence": event.sequence,
        "status": event.type.status.value if event.type.status else None,
        "started_at": None, "phase": None, "completed_at": None, "set_output": False, "output": None,
        "error": None, "logs": "", "metrics": "{}",
    }
    if isinstance(data, Started):
        params.update(started_at=data.started_at, phase=data.phase)
        if data.load_time is not None:
            params["metrics"] = _json({"load_time": data.load_time})
    elif isinstance(data, Logs):
        params["logs"] = data.logs
    elif isinstance(data, Output):
        params.update(set_output=True, output=_json(data.output))
    elif isinstance(data, Completed):
        params.update(completed_at=data.completed_at, metrics=_json(data.metrics),
                      error=_json(data.error.model_dump(mode="json")) if data.error else None)
        if data.output is not None:
            params.update(set_output=True, output=_json(data.output))
    return params


def webhook_id(prediction_id: str, sequence: int) -> str:
    """The Standard Webhooks message id of one event: the same on every retry and replay."""
    return f"msg_{prediction_id.replace('-', '')}_{sequence}"


DEFAULT_RESULT_TTL = 3600.0


async def apply_event(conn: AsyncConnection, event: PredictionEvent, base_url: str) -> bool:
    """Apply one event inside the caller's transaction; True when it changed the read model."""
    if isinstance(event.data, Created):
        created = event.data
        inserted = await conn.execute(INSERT_CREATED, {
            "id": event.subject, "owner": created.owner, "model": created.model,
            "input": _json(created.input), "webhook": created.webhook,
            "filter": _json(created.webhook_events_filter), "created_at": created.created_at,
            "sequence": event.sequence, "deadline": created.deadline,
            "result_ttl_seconds": created.result_ttl_seconds})
        await _record(conn, event)
        return inserted.rowcount > 0
    params = {**update_params(event), "default_ttl": DEFAULT_RESULT_TTL}
    updated = (await conn.execute(UPDATE, params)).first()
    if updated is None:
        return False
    await _record(conn, event)
    row = PredictionRow.model_validate(updated._mapping)
    # Delivered when the transaction commits; waiting clients (Prefer: wait, streams) wake.
    await conn.execute(NOTIFY, {"payload": f"{row.id}:{row.status}"})
    wanted = WEBHOOK_EVENT.get(event.type)
    if row.webhook and wanted and (
            wanted is WebhookEvent.COMPLETED or wanted.value in row.webhook_events_filter):
        body = row.to_api(base_url).model_dump_json().encode()
        await conn.execute(ENQUEUE, {
            "webhook_id": webhook_id(row.id, event.sequence), "prediction_id": row.id,
            "owner": row.owner, "url": row.webhook, "event_type": event.type.value,
            "sequence": event.sequence, "body": body})
    return True


async def _record(conn: AsyncConnection, event: PredictionEvent) -> None:
    await conn.execute(INSERT_HISTORY, {
        "id": event.subject, "sequence": event.sequence, "type": event.type.value,
        "time": event.time, "data": event.value().decode()})

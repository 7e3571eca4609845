"""Projects batches of inferhook.events into Postgres with a fixed number of statements.

One Postgres transaction per batch: lock the touched predictions and their held events,
fold the events over them (dispatcher.fold), write the changed rows, the history, the
webhook outbox rows and the events held for predictions not known yet, NOTIFY
`inferhook_prediction_changed` once per changed prediction, and store the next offset of
each partition, so a batch is applied entirely or not at all, and exactly once. Every
statement takes the whole batch as one JSON array or a few arrays; none runs per event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.fold import PROGRESS, Current, Folded, Held, dumps, fold
from dispatcher.throttle import Plan, QueuedProgress, plan
from inferhook.db import PREDICTION_CHANGED
from schemas.events import EventType, PredictionEvent, utcnow
from schemas.status import TERMINAL
from schemas.webhooks import endpoint_of

log = logging.getLogger(__name__)

PROGRESS_TYPES = sorted(t.value for t in PROGRESS)
TERMINAL_TYPES = sorted(t.value for t in EventType if t.status in TERMINAL)
_TERMINAL_STATUS = {t.value: t.status.value for t in EventType if t.status in TERMINAL}

LOAD = text("""
SELECT id, owner, model, status, webhook, webhook_events_filter, created_at, last_sequence,
       started_at, completed_at, expires_at, deadline, result_ttl_seconds, phase, data_removed,
       error, metrics, webhook IS NOT NULL AS full,
       CASE WHEN webhook IS NOT NULL THEN input END AS input,
       CASE WHEN webhook IS NOT NULL THEN output END AS output,
       CASE WHEN webhook IS NOT NULL THEN logs ELSE '' END AS logs
FROM predictions WHERE id = ANY(CAST(:ids AS text[]))
ORDER BY id FOR UPDATE
""")

_ROW_TYPES = """id text, owner text, model text, status text, input jsonb, output jsonb,
  error jsonb, logs text, webhook text, webhook_events_filter jsonb, metrics jsonb,
  created_at timestamptz, started_at timestamptz, completed_at timestamptz,
  expires_at timestamptz, data_removed boolean, last_sequence integer, deadline timestamptz,
  result_ttl_seconds float8, phase text, output_set boolean"""

INSERT_NEW = text(f"""
INSERT INTO predictions AS p (id, owner, model, status, input, output, error, logs, webhook,
  webhook_events_filter, metrics, created_at, started_at, completed_at, expires_at,
  data_removed, last_sequence, deadline, result_ttl_seconds, phase)
SELECT id, owner, model, status, input, output, error, logs, webhook, webhook_events_filter,
  metrics, created_at, started_at, completed_at, expires_at, data_removed, last_sequence,
  deadline, result_ttl_seconds, phase
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_ROW_TYPES})
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, output = EXCLUDED.output,
  error = EXCLUDED.error, logs = EXCLUDED.logs, metrics = EXCLUDED.metrics,
  started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at,
  expires_at = EXCLUDED.expires_at, last_sequence = EXCLUDED.last_sequence,
  deadline = EXCLUDED.deadline, result_ttl_seconds = EXCLUDED.result_ttl_seconds,
  phase = EXCLUDED.phase
WHERE p.last_sequence <= EXCLUDED.last_sequence
""")
"""New predictions; a row ingest wrote meanwhile (read-your-writes) is brought up to date."""

UPDATE_EXISTING = text(f"""
UPDATE predictions AS p SET status = r.status, started_at = r.started_at, phase = r.phase,
  completed_at = r.completed_at, expires_at = r.expires_at, error = r.error,
  output = CASE WHEN r.output_set THEN r.output ELSE p.output END,
  logs = p.logs || r.logs, metrics = p.metrics || r.metrics,
  last_sequence = r.last_sequence, deadline = r.deadline,
  result_ttl_seconds = r.result_ttl_seconds
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_ROW_TYPES})
WHERE p.id = r.id
""")
"""Changed predictions that existed: logs and metrics as deltas, output only when set."""

INSERT_HISTORY = text("""
INSERT INTO prediction_events (prediction_id, sequence, type, time, data)
SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:sequences AS bigint[]),
                     CAST(:types AS text[]), CAST(:times AS timestamptz[]),
                     CAST(:data AS jsonb[]))
ON CONFLICT DO NOTHING
""")

NOTIFY = text(f"""
SELECT count(pg_notify('{PREDICTION_CHANGED}', payload))
FROM unnest(CAST(:payloads AS text[])) AS payload
""")

LOAD_PROGRESS = text("""
SELECT id, prediction_id, scheduled_at,
       (state = 'pending' AND attempts = 0 AND claim_id IS NULL) AS untried
FROM webhook_deliveries
WHERE prediction_id = ANY(CAST(:ids AS text[])) AND event_type = ANY(CAST(:types AS text[]))
  AND (state = 'pending' OR scheduled_at > now() - make_interval(secs => :window))
ORDER BY prediction_id, sequence FOR UPDATE
""")

SUPERSEDE = text("""
UPDATE webhook_deliveries SET state = 'superseded', finished_at = now()
WHERE state = 'pending' AND claim_id IS NULL AND (
  (prediction_id = ANY(CAST(:retrying AS text[])) AND attempts > 0
   AND event_type <> ALL(CAST(:terminal AS text[])))
  OR (prediction_id = ANY(CAST(:progress_of AS text[])) AND attempts = 0
      AND event_type = ANY(CAST(:progress AS text[]))))
""")

REPLACE = text("""
UPDATE webhook_deliveries AS d SET webhook_id = r.webhook_id, sequence = r.sequence,
  event_type = r.event_type, body = convert_to(r.body, 'UTF8')
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
  AS r(id bigint, webhook_id text, sequence bigint, event_type text, body text)
WHERE d.id = r.id AND d.claim_id IS NULL AND d.attempts = 0
""")

ENQUEUE = text("""
INSERT INTO webhook_deliveries (webhook_id, prediction_id, owner, url, endpoint, event_type,
  sequence, body, state, attempts, next_attempt_at, scheduled_at, created_at)
SELECT r.webhook_id, r.prediction_id, r.owner, r.url, r.endpoint, r.event_type, r.sequence,
  convert_to(r.body, 'UTF8'), 'pending', 0, r.due, r.due, now()
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
  AS r(webhook_id text, prediction_id text, owner text, url text, endpoint text,
       event_type text, sequence bigint, body text, due timestamptz)
ON CONFLICT (webhook_id) DO NOTHING
""")

LOAD_HELD = text("""
SELECT prediction_id, headers, value FROM parked_events
WHERE prediction_id = ANY(CAST(:ids AS text[]))
ORDER BY prediction_id, sequence FOR UPDATE
""")

PARK = text("""
INSERT INTO parked_events (prediction_id, sequence, headers, value, parked_at)
SELECT id, seq, h, v, now() FROM unnest(CAST(:ids AS text[]), CAST(:sequences AS bigint[]),
                                        CAST(:headers AS jsonb[]), CAST(:values AS bytea[]))
  AS x(id, seq, h, v)
ON CONFLICT (prediction_id, sequence) DO NOTHING
""")
"""Events of predictions not known yet; the first copy of a sequence is kept (as the fold does)."""

UNPARK = text("""
DELETE FROM parked_events WHERE prediction_id = ANY(CAST(:ids AS text[]))
""")

STORE_OFFSETS = text("""
INSERT INTO dispatcher_offsets (topic, partition, next_offset, updated_at)
SELECT t, p, o, now() FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[]),
                                  CAST(:offsets AS bigint[])) AS x(t, p, o)
ON CONFLICT (topic, partition) DO UPDATE
SET next_offset = GREATEST(dispatcher_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = EXCLUDED.updated_at
""")

LOAD_OFFSETS = text("""
SELECT partition, next_offset FROM dispatcher_offsets
WHERE topic = :topic AND partition = ANY(CAST(:partitions AS integer[]))
""")


@dataclass(frozen=True)
class Applied:
    """What one batch did that the caller acts on after the commit."""

    completed: tuple[tuple[str, str], ...] = ()
    """(model, status) of each prediction this batch made terminal (for metrics, once committed)."""


async def project_batch(conn: AsyncConnection, events: Sequence[PredictionEvent],
                        offsets: dict[tuple[str, int], int], *, base_url: str,
                        progress_interval: float, raw: Sequence[bytes] | None = None) -> Applied:
    """Apply `events` (arrival order) and store `offsets` inside the caller's transaction.

    `raw` optionally carries each event's data as it came from Kafka (see fold).
    """
    ids = sorted({e.subject for e in events})
    rows = {row.id: Current(**row._mapping)
            for row in await conn.execute(LOAD, {"ids": ids})} if ids else {}
    held = await _load_held(conn, ids) if ids else {}
    folded = fold(rows, events, base_url, raw, held)
    await _write_rows(conn, folded)
    await _write_held(conn, folded)
    if history := folded.history:
        await conn.execute(INSERT_HISTORY, {
            "ids": [h.prediction_id for h in history], "sequences": [h.sequence for h in history],
            "types": [h.type for h in history], "times": [h.time for h in history],
            "data": [h.data.decode() for h in history]})
    if payloads := folded.notifications():
        # Delivered when the transaction commits; waiting clients (Prefer: wait, streams) wake.
        await conn.execute(NOTIFY, {"payloads": payloads})
    if folded.intents:
        await _write_outbox(conn, folded, progress_interval)
    if offsets:
        keys = sorted(offsets)
        await conn.execute(STORE_OFFSETS, {"topics": [t for t, _ in keys],
                                           "partitions": [p for _, p in keys],
                                           "offsets": [offsets[k] for k in keys]})
    completed = tuple((folded.rows[h.prediction_id].model, _TERMINAL_STATUS[h.type])
                      for h in folded.history if h.type in _TERMINAL_STATUS)
    return Applied(completed)


async def stored_offsets(conn: AsyncConnection, topic: str,
                         partitions: Sequence[int]) -> dict[int, int]:
    """The next offset to project of each partition that has one stored."""
    result = await conn.execute(LOAD_OFFSETS, {"topic": topic, "partitions": list(partitions)})
    return {row.partition: row.next_offset for row in result}


def _row_json(row: Current, *, whole: bool) -> dict[str, Any]:
    return {
        "id": row.id, "owner": row.owner, "model": row.model, "status": row.status,
        "input": row.input if whole else None, "output": row.output, "error": row.error,
        "logs": row.logs if whole else row.logs_delta, "webhook": row.webhook,
        "webhook_events_filter": row.webhook_events_filter,
        "metrics": row.metrics if whole else row.metrics_delta, "created_at": row.created_at,
        "started_at": row.started_at, "completed_at": row.completed_at,
        "expires_at": row.expires_at, "data_removed": row.data_removed,
        "last_sequence": row.last_sequence, "deadline": row.deadline,
        "result_ttl_seconds": row.result_ttl_seconds, "phase": row.phase,
        "output_set": row.output_set,
    }


async def _write_rows(conn: AsyncConnection, folded: Folded) -> None:
    changed = folded.changed
    new = [_row_json(r, whole=True) for r in changed if r.new]
    existing = [_row_json(r, whole=False) for r in changed if not r.new]
    if new:
        await conn.execute(INSERT_NEW, {"rows": dumps(new)})
    if existing:
        await conn.execute(UPDATE_EXISTING, {"rows": dumps(existing)})


async def _load_held(conn: AsyncConnection, ids: list[str]) -> dict[str, list[Held]]:
    held: dict[str, list[Held]] = {}
    for row in await conn.execute(LOAD_HELD, {"ids": ids}):
        headers = [(name, value.encode()) for name, value in row.headers]
        held.setdefault(row.prediction_id, []).append(
            Held(PredictionEvent.decode(headers, row.value), row.value))
    return held


async def _write_held(conn: AsyncConnection, folded: Folded) -> None:
    if folded.unpark:
        await conn.execute(UNPARK, {"ids": sorted(folded.unpark)})
    if park := folded.park:
        await conn.execute(PARK, {
            "ids": [h.event.subject for h in park], "sequences": [h.event.sequence for h in park],
            "headers": [dumps([[n, v.decode()] for n, v in h.event.headers()]) for h in park],
            "values": [h.raw for h in park]})


async def _write_outbox(conn: AsyncConnection, folded: Folded, interval: float) -> None:
    touched = sorted({i.prediction_id for i in folded.intents})
    queued: dict[str, QueuedProgress] = {}
    for row in await conn.execute(LOAD_PROGRESS, {"ids": touched, "types": PROGRESS_TYPES,
                                                  "window": interval + 1.0}):
        queued[row.prediction_id] = QueuedProgress(**row._mapping)  # newest wins (ordered)
    outbox: Plan = plan(folded.intents, queued, utcnow(), interval)
    if outbox.supersede_retrying or outbox.supersede_progress:
        await conn.execute(SUPERSEDE, {
            "retrying": sorted(outbox.supersede_retrying), "terminal": TERMINAL_TYPES,
            "progress_of": sorted(outbox.supersede_progress), "progress": PROGRESS_TYPES})
    if outbox.replace:
        await conn.execute(REPLACE, {"rows": dumps([
            {"id": row_id, "webhook_id": i.webhook_id, "sequence": i.sequence,
             "event_type": i.event_type.value, "body": i.body.decode()}
            for row_id, i in outbox.replace.items()])})
    if outbox.inserts:
        await conn.execute(ENQUEUE, {"rows": dumps([
            {"webhook_id": d.intent.webhook_id, "prediction_id": d.intent.prediction_id,
             "owner": d.intent.owner, "url": d.intent.url, "endpoint": endpoint_of(d.intent.url),
             "event_type": d.intent.event_type.value, "sequence": d.intent.sequence,
             "body": d.intent.body.decode(), "due": d.due} for d in outbox.inserts])})

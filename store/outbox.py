"""The webhook outbox (`webhook_deliveries`, `webhook_attempts`): every statement on it.

Writers: the projector enqueues the webhooks its events call for and coalesces queued
progress; the outbox worker claims due rows, records outcomes, and holds or stops
endpoints; the API re-queues a delivery. All enqueue through `enqueue`.

A row is one webhook-id to one destination: a prediction's own `webhook` (`endpoint_id`
'') or an account endpoint (dispatcher.fanout). Coalescing, superseding and the 410 stop
apply to prediction webhooks only; an endpoint's rows are each delivered, failed or skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.events import EventType
from schemas.status import TERMINAL
from schemas.tables import WebhookDeliveryRow
from schemas.webhooks import WebhookAttempt, WebhookDelivery, endpoint_of
from store.records import Connection, execute, fetch, jsonb, recordset

TERMINAL_TYPES = sorted(t.value for t in EventType if t.status in TERMINAL)
"""Event types that end a prediction: their webhooks are never superseded."""

_GIVEN = ("webhook_id", "prediction_id", "owner", "url", "endpoint", "event_type", "sequence",
          "endpoint_id", "state")
"""What an enqueue says of a delivery, besides its body (JSON text) and when it is due."""

ENQUEUE_ROWS = f"""
INSERT INTO webhook_deliveries ({", ".join(_GIVEN)}, body, attempts, next_attempt_at,
  scheduled_at, created_at)
SELECT {", ".join(f"r.{c}" for c in _GIVEN)}, convert_to(r.body, 'UTF8'), 0, r.due,
  r.due, now()
FROM jsonb_to_recordset(CAST(:deliveries AS jsonb))
  AS r({recordset(WebhookDeliveryRow, _GIVEN, extra="body text, due timestamptz")})
ON CONFLICT (webhook_id, endpoint_id) DO NOTHING"""
"""A webhook-id is queued once per destination: a second enqueue of it (a replayed event)
changes nothing. `state` is `pending`, or `skipped` for a disabled endpoint. Also run
inside the projector's one write statement (store.predictions.APPLY)."""

ENQUEUE = text(ENQUEUE_ROWS)

QUEUED_PROGRESS = """
SELECT id, prediction_id, sequence, scheduled_at,
       (state = 'pending' AND attempts = 0 AND claim_id IS NULL) AS untried
FROM webhook_deliveries
WHERE prediction_id = ANY(CAST(:ids AS text[]))
  AND event_type = ANY(CAST(:progress_types AS text[])) AND endpoint_id = ''
  AND (state = 'pending' OR scheduled_at > now() - make_interval(secs => :window))
ORDER BY prediction_id, sequence FOR UPDATE"""
"""The progress rows of a batch's predictions that are pending or were scheduled in the last
`window` seconds, locked: read by the projector's LOCK (store.predictions), which keeps the
newest per prediction (dispatcher.throttle.QueuedProgress)."""

SUPERSEDE = """
UPDATE webhook_deliveries SET state = 'superseded', finished_at = now()
WHERE state = 'pending' AND claim_id IS NULL AND endpoint_id = ''
  AND id <> ALL(CAST(:replaced AS bigint[])) AND (
  (prediction_id = ANY(CAST(:retrying AS text[])) AND attempts > 0
   AND event_type <> ALL(CAST(:terminal AS text[])))
  OR (prediction_id = ANY(CAST(:progress_of AS text[])) AND attempts = 0
      AND event_type = ANY(CAST(:progress_types AS text[]))))"""
"""Rows REPLACE gives a newer message (`replaced`) are left to it: one statement must not
change a row twice."""

REPLACE = """
UPDATE webhook_deliveries AS d SET webhook_id = r.webhook_id, sequence = r.sequence,
  event_type = r.event_type, body = convert_to(r.body, 'UTF8')
FROM jsonb_to_recordset(CAST(:replacements AS jsonb))
  AS r(id bigint, webhook_id text, sequence bigint, event_type text, body text)
WHERE d.id = r.id AND d.claim_id IS NULL AND d.attempts = 0"""

CLAIM = text("""
WITH candidates AS (
  SELECT d.id, d.endpoint, d.next_attempt_at, ep.rate_limit FROM webhook_deliveries d
  LEFT JOIN webhook_endpoints ep ON ep.id = d.endpoint_id AND d.endpoint_id <> ''
  WHERE d.state = 'pending' AND d.next_attempt_at <= now()
    AND d.endpoint <> ALL(CAST(:blocked AS text[]))
    AND (d.endpoint_id = '' OR (ep.id IS NOT NULL AND ep.disabled_at IS NULL))
    AND NOT ((d.endpoint_id = '' OR ep.ordered) AND EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.prediction_id = d.prediction_id AND e.endpoint_id = d.endpoint_id
        AND e.state = 'pending' AND e.sequence < d.sequence))
  ORDER BY d.next_attempt_at LIMIT :scan),
ranked AS (
  SELECT c.id, c.next_attempt_at,
         row_number() OVER (PARTITION BY c.endpoint ORDER BY c.next_attempt_at, c.id) AS n,
         LEAST(COALESCE(l.room, :cap), COALESCE(c.rate_limit, :cap)) AS room
  FROM candidates c
  LEFT JOIN unnest(CAST(:limited AS text[]), CAST(:rooms AS integer[])) AS l(endpoint, room)
    ON l.endpoint = c.endpoint),
picked AS (
  SELECT d.id FROM webhook_deliveries d
  WHERE d.id = ANY(ARRAY(SELECT id FROM ranked WHERE n <= room
                         ORDER BY next_attempt_at LIMIT :limit))
    AND d.state = 'pending' AND d.next_attempt_at <= now()
  FOR UPDATE SKIP LOCKED)
UPDATE webhook_deliveries w SET claim_id = :claim, attempts = w.attempts + 1,
  next_attempt_at = now() + make_interval(secs => :lease)
WHERE w.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING w.id, w.webhook_id, w.prediction_id, w.owner, w.url, w.endpoint, w.event_type,
  w.sequence, w.body, w.attempts, w.endpoint_id,
  CASE WHEN w.endpoint_id = '' THEN
    (SELECT s.secret FROM webhook_secrets s WHERE s.owner = w.owner)
  ELSE (SELECT p.secret FROM webhook_endpoints p WHERE p.id = w.endpoint_id) END AS secret,
  CASE WHEN w.endpoint_id = '' THEN
    (SELECT s.previous_secret FROM webhook_secrets s
     WHERE s.owner = w.owner AND s.previous_expires_at > now())
  ELSE (SELECT p.previous_secret FROM webhook_endpoints p
        WHERE p.id = w.endpoint_id AND p.previous_expires_at > now()) END AS previous_secret,
  (SELECT s.signing_key FROM webhook_secrets s WHERE s.owner = w.owner) AS signing_key,
  (SELECT p.rate_limit FROM webhook_endpoints p WHERE p.id = w.endpoint_id) AS rate_limit
""")
"""Order: a prediction's own webhooks, and an `ordered` endpoint's deliveries, go out one at a
time per prediction (lowest pending sequence first); other endpoints' go out as they come due.
A disabled endpoint's rows are not taken; a rate-limited one's at most `rate_limit` a claim."""

_SUPERSEDED_BY_NEWER = """(r.state = 'pending' AND d.event_type <> ALL(CAST(:terminal AS text[]))
  AND d.endpoint_id = ''
  AND EXISTS (SELECT 1 FROM webhook_deliveries l
              WHERE l.prediction_id = d.prediction_id AND l.endpoint_id = ''
                AND l.sequence > d.sequence))"""

RECORD = text(f"""
WITH r AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    id bigint, claim text, state text, delay float8, status integer, error text,
    attempt integer, started_at timestamptz, latency_ms float8, response text,
    webhook_id text, prediction_id text)),
done AS (
  UPDATE webhook_deliveries d SET
    state = CASE WHEN {_SUPERSEDED_BY_NEWER} THEN 'superseded' ELSE r.state END,
    finished_at = CASE WHEN r.state = 'pending' AND NOT {_SUPERSEDED_BY_NEWER} THEN NULL
                  ELSE now() END,
    claim_id = NULL, next_attempt_at = now() + make_interval(secs => r.delay),
    last_status = r.status, last_error = r.error
  FROM r WHERE d.id = r.id AND d.claim_id = r.claim
  RETURNING d.id)
INSERT INTO webhook_attempts (delivery_id, prediction_id, webhook_id, attempt, started_at,
                              status, latency_ms, error, response)
SELECT id, prediction_id, webhook_id, attempt, started_at, status, latency_ms, error, response
FROM r
""")
"""Outcomes of a batch of attempts. Every attempt is logged (it did happen); only rows
still holding the recorder's claim change. A failed non-terminal webhook with a newer one
queued behind it is superseded instead of retried."""

STOP_ENDPOINT = text("""
UPDATE webhook_deliveries SET state = 'failed', finished_at = now(),
  last_error = 'not sent: the endpoint answered 410 Gone'
WHERE owner = :owner AND url = :url AND state = 'pending' AND claim_id IS NULL
  AND endpoint_id = ''
""")

HOLD_ENDPOINT = text("""
UPDATE webhook_deliveries SET next_attempt_at = :until
WHERE endpoint = :endpoint AND state = 'pending' AND claim_id IS NULL AND next_attempt_at < :until
""")

REQUEUE = text("""
UPDATE webhook_deliveries SET state = 'pending', attempts = 0, claim_id = NULL,
  next_attempt_at = now(), finished_at = NULL,
  body = CASE WHEN length(body) = 0 THEN :body ELSE body END
WHERE id = :id
""")
"""A fresh retry schedule, same webhook-id; a body cleared by retention is written again."""

LATEST = text("""
SELECT id, state FROM webhook_deliveries
WHERE prediction_id = :prediction_id AND owner = :owner AND endpoint_id = ''
ORDER BY sequence DESC, id DESC LIMIT 1 FOR UPDATE
""")

_SHOWN = """id, webhook_id, prediction_id, event_type, sequence, url, state, attempts,
  CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, created_at,
  finished_at, last_status, last_error, NULLIF(endpoint_id, '') AS endpoint_id"""

OF_PREDICTION = text(f"""
SELECT {_SHOWN} FROM webhook_deliveries
WHERE prediction_id = :prediction_id AND owner = :owner AND endpoint_id = ''
ORDER BY sequence, id
""")

ATTEMPTS = text("""
SELECT delivery_id, attempt, started_at AS time, status AS status_code, latency_ms, error,
       response
FROM webhook_attempts WHERE prediction_id = :prediction_id ORDER BY id
""")

OF_OWNER = text(f"""
SELECT {_SHOWN} FROM webhook_deliveries
WHERE owner = :owner AND endpoint_id = '' AND (CAST(:state AS text) IS NULL OR state = :state)
  AND (CAST(:before AS bigint) IS NULL OR id < :before)
ORDER BY id DESC LIMIT :limit
""")

ONE = text(f"SELECT {_SHOWN} FROM webhook_deliveries WHERE id = :id")
BY_WEBHOOK_ID = text(f"SELECT {_SHOWN} FROM webhook_deliveries "
                     "WHERE webhook_id = :webhook_id AND endpoint_id = ''")

STATS = text("""
SELECT count(*) AS pending,
       count(*) FILTER (WHERE next_attempt_at <= now() AND claim_id IS NULL) AS due,
       COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)
                FILTER (WHERE next_attempt_at <= now() AND claim_id IS NULL)), 0) AS oldest_due_age
FROM webhook_deliveries WHERE state = 'pending'
""")


@dataclass(frozen=True)
class NewDelivery:
    """A webhook to queue, first due at `due`."""

    webhook_id: str
    prediction_id: str
    owner: str
    url: str
    event_type: str
    sequence: int
    body: bytes
    due: datetime
    endpoint_id: str = ""
    """The account endpoint it goes to; '' for a prediction's own webhook."""
    skipped: bool = False
    """Recorded as `skipped` (its endpoint is disabled) instead of queued."""


@dataclass(frozen=True)
class OutboxStats:
    """Pending rows, those due and not leased, and how long the oldest of those has been due."""

    pending: int
    due: int
    oldest_due_age: float


def _delivery_values(deliveries: Sequence[NewDelivery]) -> str:
    return jsonb([
        {"webhook_id": d.webhook_id, "prediction_id": d.prediction_id, "owner": d.owner,
         "url": d.url, "endpoint": d.endpoint_id or endpoint_of(d.url),
         "event_type": d.event_type, "sequence": d.sequence, "body": d.body.decode(),
         "due": d.due, "endpoint_id": d.endpoint_id,
         "state": "skipped" if d.skipped else "pending"}
        for d in deliveries])


async def enqueue(conn: Connection, deliveries: Sequence[NewDelivery]) -> None:
    """Queue webhooks; a webhook-id already queued to that destination is left as it is.
    A fan-out delivery's breaker/concurrency unit (`endpoint`) is its endpoint id."""
    if deliveries:
        await execute(conn, ENQUEUE, {"deliveries": _delivery_values(deliveries)})


def queued_parameters(progress_types: Sequence[str], window: float) -> dict[str, Any]:
    """QUEUED_PROGRESS's parameters besides `ids`: the progress event types, and seconds."""
    return {"progress_types": list(progress_types), "window": window}


@dataclass(frozen=True)
class Writes:
    """What a projected batch changes in the outbox, written by store.predictions.APPLY
    (SUPERSEDE, REPLACE, then ENQUEUE_ROWS, as one statement)."""

    retrying: Sequence[str] = ()
    """Predictions whose pending, unclaimed rows that failed an attempt are superseded
    (terminal ones excepted)."""
    progress_of: Sequence[str] = ()
    """Predictions whose untried progress rows are superseded."""
    replacements: Mapping[int, tuple[str, int, str, bytes]] = field(default_factory=dict)
    """Untried, unclaimed rows given a newer message: row id → (webhook_id, sequence,
    event_type, body)."""
    deliveries: Sequence[NewDelivery] = ()
    """Rows to queue (see `enqueue`)."""
    progress_types: Sequence[str] = ()
    """The event types of the progress rows `progress_of` supersedes."""

    def parameters(self) -> dict[str, Any]:
        """SUPERSEDE's, REPLACE's and ENQUEUE_ROWS's parameters."""
        return {
            "retrying": sorted(self.retrying), "terminal": TERMINAL_TYPES,
            "progress_of": sorted(self.progress_of), "progress_types": list(self.progress_types),
            "replaced": sorted(self.replacements),
            "replacements": jsonb([
                {"id": row_id, "webhook_id": w, "sequence": s, "event_type": t,
                 "body": b.decode()}
                for row_id, (w, s, t, b) in self.replacements.items()]),
            "deliveries": _delivery_values(self.deliveries)}


async def claim(conn: Connection, *, claim_id: str, limit: int, scan: int, lease: float,
                cap: int, blocked: Sequence[str], limited: Sequence[str],
                rooms: Sequence[int]) -> Sequence[Mapping[str, Any]]:
    """Lease up to `limit` due rows (among the `scan` due soonest) for `lease` seconds: only
    the lowest pending sequence of a prediction, none of a `blocked` endpoint, at most `cap`
    per endpoint (`rooms` for the `limited` ones). Rows come with the owner's signing keys."""
    return await fetch(conn, CLAIM, {
        "blocked": list(blocked), "limited": list(limited), "rooms": list(rooms), "cap": cap,
        "scan": scan, "limit": limit, "claim": claim_id, "lease": lease})


async def record(conn: Connection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Write attempt outcomes, each {id, claim, state, delay, status, error, attempt,
    started_at, latency_ms, response, webhook_id, prediction_id} (see RECORD; one statement,
    whole on its own)."""
    if outcomes:
        await execute(conn, RECORD, {"rows": jsonb(list(outcomes)), "terminal": TERMINAL_TYPES})


async def stop_endpoint(conn: Connection, owner: str, url: str) -> None:
    """Fail the owner's queued, unclaimed rows to `url` (it answered 410 Gone)."""
    await execute(conn, STOP_ENDPOINT, {"owner": owner, "url": url})


async def hold_endpoint(conn: Connection, endpoint: str, until: datetime) -> None:
    """Push the endpoint's queued, unclaimed rows to `until` (its circuit opened)."""
    await execute(conn, HOLD_ENDPOINT, {"endpoint": endpoint, "until": until})


def _delivery(row: Row[Any], attempts: list[WebhookAttempt] | None = None) -> WebhookDelivery:
    fields = {k: v for k, v in row._mapping.items() if k != "id"}
    return WebhookDelivery(**fields, attempt_log=attempts or [])


async def of_prediction(conn: AsyncConnection, prediction_id: str,
                        owner: str) -> list[WebhookDelivery]:
    """Every delivery of the prediction in sequence order, each with its attempts."""
    deliveries = (await conn.execute(OF_PREDICTION, {"prediction_id": prediction_id,
                                                     "owner": owner})).all()
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for a in await conn.execute(ATTEMPTS, {"prediction_id": prediction_id}):
        fields = {k: v for k, v in a._mapping.items() if k != "delivery_id"}
        by_delivery.setdefault(a.delivery_id, []).append(WebhookAttempt(**fields))
    return [_delivery(d, by_delivery.get(d.id)) for d in deliveries]


async def of_owner(conn: AsyncConnection, owner: str, *, state: str | None, before: int | None,
                   limit: int) -> list[tuple[int, WebhookDelivery]]:
    """Up to `limit` of the owner's deliveries (row id, delivery), newest first, with row
    ids below `before`, in `state` when given."""
    rows = await conn.execute(OF_OWNER, {"owner": owner, "state": state, "before": before,
                                         "limit": limit})
    return [(row.id, _delivery(row)) for row in rows]


async def requeue_latest(conn: AsyncConnection, prediction_id: str, owner: str,
                         fallback: NewDelivery) -> WebhookDelivery:
    """Queue the prediction's latest delivery again (same webhook-id, fresh schedule; one
    still pending is left as it is), or `fallback` when it has none."""
    latest = (await conn.execute(LATEST, {"prediction_id": prediction_id, "owner": owner})).first()
    if latest is None:
        await enqueue(conn, [fallback])
        row = (await conn.execute(BY_WEBHOOK_ID, {"webhook_id": fallback.webhook_id})).one()
    else:
        if latest.state != "pending":
            await conn.execute(REQUEUE, {"id": latest.id, "body": fallback.body})
        row = (await conn.execute(ONE, {"id": latest.id})).one()
    return _delivery(row)


async def stats(conn: AsyncConnection) -> OutboxStats:
    """The outbox's size and lag, in one query."""
    row = (await conn.execute(STATS)).one()
    return OutboxStats(int(row.pending), int(row.due), float(row.oldest_due_age))

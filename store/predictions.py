"""The read model (`predictions` and `prediction_events`): every statement on those tables.

Writers: ingest inserts a prediction's pending row at create time (read-your-writes); the
projector locks, writes and records history in batches; the retention sweep clears expired
data. Readers: the API (one prediction, a page, the history, queue counts) and the reaper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Row, TextClause, and_, bindparam, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

import store.offsets
import store.outbox
import store.parked
from inferhook.db import PREDICTION_CHANGED
from schemas.position import SAMPLE_STARTS
from schemas.tables import PredictionEventRow, PredictionRow
from store.records import Connection, columns, execute, fetch, jsonb, recordset

COLUMNS = columns(PredictionRow)
FIXED = ("id", "owner", "model", "input", "webhook", "webhook_events_filter", "created_at",
         "data_removed", "kind", "task_options", "priority", "api_key_id")
"""Columns the create sets once; the projector never rewrites them."""
MUTABLE = tuple(c for c in COLUMNS if c not in FIXED)
LAZY = ("input", "output", "logs")
"""Large columns the projector loads only for rows with a webhook or whose owner has account
endpoints (their bodies need them)."""
OPEN_STATUSES = ("pending", "started")

_NAMES = ", ".join(COLUMNS)
_RECORD = recordset(PredictionRow)
_WITH_FLAGS = recordset(PredictionRow, extra="output_set boolean")

INSERT_PENDING = text(f"""
INSERT INTO predictions ({_NAMES})
SELECT {_NAMES} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_RECORD})
ON CONFLICT (id) DO NOTHING
""")
"""Compiled once and prepared by asyncpg: an ORM insert built per create cost 40% of ingest's CPU."""

SELECT_ONE = select(PredictionRow).where(col(PredictionRow.id) == bindparam("id"),
                                         col(PredictionRow.owner) == bindparam("owner"))
"""Built once: building the ORM query per GET was a sixth of ingest's CPU under read load."""

_FULL = "(p.webhook IS NOT NULL OR e.owner IS NOT NULL)"
_LOADED = ", ".join(
    [f"p.{c}" for c in COLUMNS if c not in LAZY]
    + [f"{_FULL} AS full", "e.owner IS NOT NULL AS fanout"]
    + [f"CASE WHEN {_FULL} THEN p.{c} ELSE '' END AS {c}" if c == "logs"
       else f"CASE WHEN {_FULL} THEN p.{c} END AS {c}" for c in LAZY])

_LOCKED = f"""
SELECT {_LOADED} FROM predictions p
LEFT JOIN LATERAL (SELECT owner FROM webhook_endpoints e WHERE e.owner = p.owner LIMIT 1) e
  ON true
WHERE p.id = ANY(CAST(:ids AS text[])) ORDER BY p.id FOR UPDATE OF p"""
"""The owner's first endpoint joined with LIMIT 1 rather than an EXISTS in a lateral
subquery: the same answer at half the planning (≈0.08 against ≈0.16 ms, and Postgres plans
this statement afresh on every execution: a custom plan wins over the generic one)."""
LOADED = (*[c for c in COLUMNS if c not in LAZY], "full", "fanout", *LAZY)
"""The columns LOCK reads of a prediction (`full`: the lazy columns were read; `fanout`: the
owner has account endpoints, so every event fans out with the whole prediction)."""

LOCK = text(f"""
WITH locked AS ({_LOCKED}),
held AS ({store.parked.HELD}),
queued AS ({store.outbox.QUEUED_PROGRESS})
SELECT i.subject, l.*, h.held_headers, h.held_values, q.queued_id, q.queued_at,
       q.queued_untried
FROM unnest(CAST(:ids AS text[])) AS i(subject)
LEFT JOIN locked l ON l.id = i.subject
LEFT JOIN (SELECT prediction_id, jsonb_agg(headers ORDER BY sequence) AS held_headers,
                  array_agg(value ORDER BY sequence) AS held_values
           FROM held GROUP BY prediction_id) h ON h.prediction_id = i.subject
LEFT JOIN (SELECT DISTINCT ON (prediction_id) prediction_id, id AS queued_id,
                  scheduled_at AS queued_at, untried AS queued_untried
           FROM queued ORDER BY prediction_id, sequence DESC) q ON q.prediction_id = i.subject
ORDER BY i.subject
""")
"""What a batch reads, locked, in one round trip: per prediction id of the batch, its row
(NULL when not known yet), its held events (store.parked) in sequence order, and its newest
queued progress webhook (store.outbox.QUEUED_PROGRESS). Every CTE is read whole, so every
row it selects is locked."""

_INSERT_NEW = f"""
INSERT INTO predictions AS p ({_NAMES})
SELECT {_NAMES} FROM jsonb_to_recordset(CAST(:new AS jsonb)) AS r({_WITH_FLAGS})
ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in MUTABLE)}
WHERE p.last_sequence <= EXCLUDED.last_sequence"""
"""New predictions; a row ingest wrote meanwhile (read-your-writes) is brought up to date."""

_DELTAS = {"output": "CASE WHEN r.output_set THEN r.output ELSE p.output END",
           "logs": "p.logs || r.logs", "metrics": "p.metrics || r.metrics"}
_UPDATE_EXISTING = f"""
UPDATE predictions AS p SET {", ".join(f"{c} = {_DELTAS.get(c, f'r.{c}')}" for c in MUTABLE)}
FROM jsonb_to_recordset(CAST(:changed AS jsonb)) AS r({_WITH_FLAGS})
WHERE p.id = r.id"""
"""Changed predictions that existed: logs and metrics as deltas, output only when set."""

_INSERT_HISTORY = """
INSERT INTO prediction_events (prediction_id, sequence, type, time, data, owner, model)
SELECT * FROM unnest(CAST(:history_ids AS text[]), CAST(:sequences AS bigint[]),
                     CAST(:types AS text[]), CAST(:times AS timestamptz[]),
                     CAST(:data AS jsonb[]), CAST(:owners AS text[]), CAST(:models AS text[]))
ON CONFLICT DO NOTHING"""
"""A sequence already recorded is kept as it was. `position` and `txid` come from their
defaults: the account feed's order (store.feed)."""

_APPLY_PARTS = {
    "inserted": _INSERT_NEW, "updated": _UPDATE_EXISTING, "recorded": _INSERT_HISTORY,
    "positioned": store.offsets.STORE, "unparked": store.parked.UNPARK,
    "parked": store.parked.PARK, "superseded": store.outbox.SUPERSEDE,
    "replaced": store.outbox.REPLACE, "enqueued": store.outbox.ENQUEUE_ROWS}


@cache
def apply_statement(parts: frozenset[str]) -> TextClause:
    """APPLY made of `parts` (names of _APPLY_PARTS), in that order.

    A projected batch's writes in one statement, so one round trip: the folded rows, the
    history, the partitions' next offsets, the held events (store.parked), the outbox's
    changes (store.outbox.Writes) and NOTIFY (delivered at commit). Every part sees the
    rows as LOCK left them, and no two change one row: the new rows were not there when the
    batch locked its rows, held events are parked and unparked for different predictions,
    and SUPERSEDE leaves the rows REPLACE changes. A part with nothing to write is left out:
    each costs Postgres its tables' and indexes' locks and set-up even when empty, and a
    batch of one event uses two or three of the nine.
    """
    ctes = ",\n".join(f"{name} AS ({sql})" for name, sql in _APPLY_PARTS.items()
                      if name in parts)
    return text(f"""{"WITH " + ctes if ctes else ""}
SELECT count(pg_notify('{PREDICTION_CHANGED}', payload))
FROM unnest(CAST(:payloads AS text[])) AS payload
""")


OPEN_COUNTS = text("""
SELECT model, priority, status, count(*) AS n FROM predictions
WHERE status IN ('pending', 'started') GROUP BY model, priority, status
""")

PENDING_OF_MODEL = text("""
SELECT count(*) FROM predictions WHERE status = 'pending' AND model = :model
""")
OPEN_OF_OWNER = text("""
SELECT count(*) FROM predictions WHERE status IN ('pending', 'started') AND owner = :owner
""")
OPEN_OF_KEY = text("""
SELECT count(*) FROM predictions WHERE status IN ('pending', 'started') AND api_key_id = :key
""")
QUEUE_AHEAD = text("""
SELECT priority, owner, count(*) AS n,
       count(*) FILTER (WHERE (created_at, id) < (:created_at, :id)) AS earlier
FROM predictions WHERE status = 'pending' AND model = :model GROUP BY priority, owner
""")
_LATEST_STARTS = f"""
SELECT count(*) AS started, extract(epoch FROM now() - min(started_at))::float8 AS span
FROM (SELECT started_at FROM predictions
      WHERE model = {{model}} AND started_at > now() - make_interval(secs => :seconds)
      ORDER BY started_at DESC LIMIT {SAMPLE_STARTS}) latest"""
QUEUE_PLACES = text(f"""
WITH batch AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(id text, model text, priority text, owner text, created_at timestamptz, pending boolean)),
queued AS (
  SELECT id, model, priority, owner, created_at FROM predictions
  WHERE status = 'pending' AND model = ANY(CAST(:models AS text[]))
    AND id <> ALL(ARRAY(SELECT id FROM batch))
  UNION ALL
  SELECT id, model, priority, owner, created_at FROM batch WHERE pending),
mine AS (
  SELECT t.id, t.model, t.priority, t.owner, count(q.id) AS earlier
  FROM queued t LEFT JOIN queued q
    ON q.model = t.model AND q.priority = t.priority AND q.owner = t.owner
   AND (q.created_at, q.id) < (t.created_at, t.id)
  WHERE t.id = ANY(CAST(:targets AS text[]))
  GROUP BY t.id, t.model, t.priority, t.owner),
started AS (
  SELECT m.model, s.started, s.span FROM unnest(CAST(:models AS text[])) AS m(model)
  CROSS JOIN LATERAL ({_LATEST_STARTS.format(model="m.model")}) s)
SELECT g.model, g.priority, g.owner, g.n, t.targets, t.earlier, s.started, s.span
FROM (SELECT model, priority, owner, count(*) AS n FROM queued GROUP BY model, priority, owner) g
JOIN started s ON s.model = g.model
LEFT JOIN (SELECT model, priority, owner, array_agg(id ORDER BY id) AS targets,
                  array_agg(earlier ORDER BY id) AS earlier
           FROM mine GROUP BY model, priority, owner) t
  ON (t.model, t.priority, t.owner) = (g.model, g.priority, g.owner)
""")
"""QUEUE_AHEAD and STARTED_SINCE for many predictions at once, as a batch leaves the read
model: the pending predictions of the models asked about by group, with each target's
count of earlier ones in its group, and each model's recent starts. `rows` overrides what
Postgres holds for the predictions a batch touched (not written yet when this runs)."""
STARTED_SINCE = text(_LATEST_STARTS.format(model=":model"))
"""The latest (at most SAMPLE_STARTS, a constant so the plan knows the limit) starts of a
model in the last `seconds`: how many, and how long ago the oldest of them was (one backward
scan of ix_predictions_model_started)."""

OVERDUE = text("""
SELECT p.id, p.status, p.model,
  CASE WHEN p.deadline IS NOT NULL AND p.deadline < now() THEN 'deadline'
       WHEN p.status = 'pending'
         AND p.created_at < now() - make_interval(secs => COALESCE(m.queue, :queue)) THEN 'queue'
       ELSE 'run' END AS why
FROM predictions p
LEFT JOIN unnest(CAST(:models AS text[]), CAST(:queues AS float8[]), CAST(:runs AS float8[]))
  AS m(name, queue, run) ON m.name = p.model
WHERE p.status IN ('pending', 'started') AND (
  (p.deadline IS NOT NULL AND p.deadline < now())
  OR (p.status = 'pending'
      AND p.created_at < now() - make_interval(secs => COALESCE(m.queue, :queue)))
  OR (p.status = 'started' AND p.phase = 'loading'
      AND p.started_at < now() - make_interval(secs => :load_grace))
  OR (p.status = 'started' AND p.phase IS DISTINCT FROM 'loading'
      AND p.started_at < now() - make_interval(secs => COALESCE(m.run, :run) + :grace
                                             + COALESCE((p.metrics->>'load_time')::float8, 0))))
LIMIT :limit
""")

SWEEP = text("""
WITH expired AS (
  SELECT id FROM predictions
  WHERE expires_at < now() AND NOT data_removed
  ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED),
history AS (
  UPDATE prediction_events e SET data = e.data - 'input' - 'output' - 'logs'
  FROM expired WHERE e.prediction_id = expired.id
    AND (e.data ? 'input' OR e.data ? 'output' OR e.data ? 'logs')),
outbox AS (
  UPDATE webhook_deliveries w SET body = ''::bytea
  FROM expired WHERE w.prediction_id = expired.id AND w.state <> 'pending')
UPDATE predictions p SET input = NULL, output = NULL, logs = '', data_removed = true
FROM expired WHERE p.id = expired.id
""")
"""Expired data goes from the row, its history and its sent webhook bodies in one statement."""


class Recorded(Protocol):
    """One applied event for the history (dispatcher.fold.HistoryEntry)."""

    @property
    def prediction_id(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def data(self) -> bytes: ...
    @property
    def owner(self) -> str: ...
    @property
    def model(self) -> str: ...


async def insert_pending(conn: Connection, row: Mapping[str, Any]) -> None:
    """Write a just-created prediction (every column of `PredictionRow`, JSON-ready); a row
    the projector wrote first is left as it is."""
    await execute(conn, INSERT_PENDING, {"rows": jsonb([row])})


async def get(conn: AsyncConnection, prediction_id: str, owner: str) -> PredictionRow | None:
    """The owner's prediction, or None (for unknown ids and others' ids alike)."""
    found = (await conn.execute(SELECT_ONE, {"id": prediction_id, "owner": owner})).first()
    return None if found is None else PredictionRow.model_validate(found._mapping)


async def page(conn: AsyncConnection, owner: str, *, limit: int, status: str | None = None,
               model: str | None = None, created_after: datetime | None = None,
               created_before: datetime | None = None,
               after: tuple[datetime, str] | None = None) -> list[PredictionRow]:
    """Up to `limit` of the owner's predictions, newest first, after the (created_at, id)
    position `after`, filtered by the others."""
    created, ident = col(PredictionRow.created_at), col(PredictionRow.id)
    statement = select(PredictionRow).where(col(PredictionRow.owner) == owner)
    if status is not None:
        statement = statement.where(col(PredictionRow.status) == status)
    if model is not None:
        statement = statement.where(col(PredictionRow.model) == model)
    if created_after is not None:
        statement = statement.where(created > created_after)
    if created_before is not None:
        statement = statement.where(created < created_before)
    if after is not None:
        at, last_id = after
        statement = statement.where(or_(created < at, and_(created == at, ident < last_id)))
    statement = statement.order_by(created.desc(), ident.desc()).limit(limit)
    return [PredictionRow.model_validate(r._mapping) for r in await conn.execute(statement)]


async def history(conn: AsyncConnection, prediction_id: str,
                  after: int) -> list[PredictionEventRow]:
    """The recorded events of a prediction with a sequence above `after`, oldest first."""
    statement = (select(PredictionEventRow)
                 .where(col(PredictionEventRow.prediction_id) == prediction_id,
                        col(PredictionEventRow.sequence) > after)
                 .order_by(col(PredictionEventRow.sequence)))
    return [PredictionEventRow.model_validate(r._mapping) for r in await conn.execute(statement)]


async def open_counts(conn: AsyncConnection) -> dict[tuple[str, str, str], int]:
    """(model, priority, status) → how many predictions are pending or started, over all owners.

    No index serves this by model alone; the table holds what the result TTL keeps, and
    the console asks every few seconds, so a scan of the open-predictions index is fine.
    """
    return {(r.model, r.priority, r.status): int(r.n) for r in await conn.execute(OPEN_COUNTS)}


async def pending_of_model(conn: AsyncConnection, model: str) -> int:
    """How many predictions of `model` are pending (every owner and priority)."""
    return int((await conn.execute(PENDING_OF_MODEL, {"model": model})).scalar_one())


async def open_of_owner(conn: AsyncConnection, owner: str) -> int:
    """How many predictions of `owner` are pending or started."""
    return int((await conn.execute(OPEN_OF_OWNER, {"owner": owner})).scalar_one())


async def open_of_key(conn: AsyncConnection, api_key_id: str) -> int:
    """How many predictions made with the API key `api_key_id` are pending or started."""
    return int((await conn.execute(OPEN_OF_KEY, {"key": api_key_id})).scalar_one())


class PendingGroup(Protocol):
    """Pending predictions of one model, one priority and one owner."""

    priority: str
    owner: str
    n: int
    """How many."""
    earlier: int
    """How many were created before the prediction asked about."""


async def queue_ahead(conn: AsyncConnection, row: PredictionRow) -> Sequence[PendingGroup]:
    """The pending predictions of `row`'s model by priority and owner, each group with how
    many of its predictions were created before `row`."""
    found: Sequence[PendingGroup] = (await conn.execute(QUEUE_AHEAD, {
        "model": row.model, "created_at": row.created_at, "id": row.id})).all()
    return found


@dataclass(frozen=True)
class QueuedGroup:
    """Pending predictions of one model, priority and owner, as a batch leaves them."""

    model: str
    priority: str
    owner: str
    n: int
    targets: list[str] | None
    """The predictions asked about in this group."""
    earlier: list[int] | None
    """For each of `targets`, how many of the group were created before it."""
    started: int
    """How many predictions of the model started in the window (at most the sample)."""
    span: float | None
    """Seconds since the oldest of those started."""


async def queue_places(conn: Connection, models: Sequence[str], targets: Sequence[str],
                       rows: Sequence[Mapping[str, Any]],
                       seconds: float) -> Sequence[QueuedGroup]:
    """The pending predictions of `models` by priority and owner, and their latest starts
    (STARTED_SINCE), in one statement (QUEUE_PLACES). `rows` are predictions a batch touched,
    each a dict of id, model, priority, owner, created_at and `pending` (whether to count it
    as pending, whatever Postgres holds); `targets` get their place in their group."""
    found = await fetch(conn, QUEUE_PLACES, {
        "rows": jsonb(list(rows)), "models": list(models), "targets": list(targets),
        "seconds": seconds})
    return [QueuedGroup(**dict(row)) for row in found]


async def started_since(conn: AsyncConnection, model: str,
                        seconds: float) -> tuple[int, float | None]:
    """How many predictions of `model` started in the last `seconds` (at most SAMPLE_STARTS,
    the latest), and how many seconds ago the oldest of those did (None: none did)."""
    found = (await conn.execute(STARTED_SINCE, {"model": model, "seconds": seconds})).one()
    return int(found.started), found.span


NO_HELD = store.parked.Writes()
NO_OUTBOX = store.outbox.Writes()


@dataclass(frozen=True)
class Locked:
    """What LOCK read for a batch."""

    rows: list[dict[str, Any]]
    """The known predictions, each a mapping of LOADED."""
    held: dict[str, list[tuple[list[list[str]], bytes]]]
    """Prediction id → its held events in sequence order: (headers as [name, value] pairs,
    value as it came from Kafka)."""
    queued: dict[str, dict[str, Any]]
    """Prediction id → its newest queued progress webhook: (id, prediction_id, scheduled_at,
    untried)."""


async def lock(conn: Connection, ids: Sequence[str], *, progress_types: Sequence[str],
               window: float) -> Locked:
    """Lock and read what a batch touching `ids` needs (LOCK): progress webhooks are those
    of `progress_types` pending or scheduled in the last `window` seconds."""
    if not ids:
        return Locked([], {}, {})
    found = await fetch(conn, LOCK, {"ids": list(ids),
                                     **store.outbox.queued_parameters(progress_types, window)})
    locked = Locked([], {}, {})
    for row in found:
        subject = row["subject"]
        if row["id"] is not None:
            locked.rows.append({name: row[name] for name in LOADED})
        if row["held_values"] is not None:
            locked.held[subject] = list(zip(row["held_headers"], row["held_values"], strict=True))
        if row["queued_id"] is not None:
            locked.queued[subject] = {"id": row["queued_id"], "prediction_id": subject,
                                      "scheduled_at": row["queued_at"],
                                      "untried": row["queued_untried"]}
    return locked


async def apply(conn: Connection, *, new: Sequence[dict[str, Any]],
                existing: Sequence[dict[str, Any]], history: Sequence[Recorded],
                notifications: Sequence[str], offsets: Mapping[tuple[str, int], int],
                held: store.parked.Writes = NO_HELD,
                outbox: store.outbox.Writes = NO_OUTBOX) -> None:
    """Write a projected batch (`apply_statement`): folded rows, `new` whole and `existing` as changes
    (logs and metrics are deltas, output only where `output_set`; each a dict of every
    column plus `output_set`), the applied events, one NOTIFY payload per changed
    prediction, (topic, partition) → next offset to project, the events to hold or release,
    and the outbox's changes."""
    parts = frozenset(name for name, wanted in (
        ("inserted", new), ("updated", existing), ("recorded", history),
        ("positioned", offsets), ("unparked", held.unpark), ("parked", held.park),
        ("superseded", outbox.retrying or outbox.progress_of),
        ("replaced", outbox.replacements), ("enqueued", outbox.deliveries)) if wanted)
    await execute(conn, apply_statement(parts), {
        "new": jsonb(list(new)), "changed": jsonb(list(existing)),
        "history_ids": [e.prediction_id for e in history],
        "sequences": [e.sequence for e in history], "types": [e.type for e in history],
        "times": [e.time for e in history], "data": [e.data.decode() for e in history],
        "owners": [e.owner for e in history], "models": [e.model for e in history],
        "payloads": list(notifications), **store.offsets.parameters(offsets),
        **held.parameters(), **outbox.parameters()})


async def overdue(conn: AsyncConnection, *, models: Sequence[str], queues: Sequence[float],
                  runs: Sequence[float], default_queue: float, default_run: float,
                  grace: float, load_grace: float, limit: int) -> Sequence[Row[Any]]:
    """Open predictions past a clock: (id, status, model, why), `why` being `deadline`
    (the create's cancel-after), `queue` (pending too long) or `run` (started too long).

    `models`, `queues` and `runs` give each model's queue deadline and run limit in
    seconds; others get the defaults. A run counts from `started_at` plus its load time;
    a model still loading gets `load_grace`.
    """
    return (await conn.execute(OVERDUE, {
        "models": list(models), "queues": list(queues), "runs": list(runs),
        "queue": default_queue, "run": default_run, "grace": grace, "load_grace": load_grace,
        "limit": limit})).all()


async def sweep_expired(conn: AsyncConnection, limit: int) -> int:
    """Clear the data of up to `limit` predictions past `expires_at`; returns how many."""
    result = await conn.execute(SWEEP, {"limit": limit})
    return int(result.rowcount)

"""Account webhook endpoints (`webhook_endpoints`): every statement on them, and the outbox
statements that act on one endpoint's deliveries (skip, recover, list).

Writers: the API (create, change, rotate, delete, disable, recover); the outbox worker
(failing/disabled/recovered health after each batch of attempts). Reader: the projector's
fan-out (the endpoints of the owners in a batch).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from schemas.events import utcnow
from schemas.tables import WebhookEndpointRow
from schemas.webhooks import WebhookAttempt, WebhookDelivery
from store import outbox
from store.accounts import new_secret
from store.records import Connection, columns, execute, fetch

ID_PREFIX = "ep_"
COLUMNS = columns(WebhookEndpointRow)
CHANGEABLE = ("url", "description", "event_types", "models", "rate_limit", "ordered", "payload")
"""Columns a PATCH may set directly (`disabled` goes through `set_disabled`)."""


def new_id() -> str:
    """A fresh endpoint id: `ep_` and 24 hex digits."""
    return ID_PREFIX + secrets.token_hex(12)


@dataclass(frozen=True)
class EndpointRecord:
    """One endpoint row."""

    id: str
    owner: str
    url: str
    description: str
    event_types: list[str]
    models: list[str]
    rate_limit: int | None
    ordered: bool
    payload: str
    secret: str
    previous_secret: str | None
    previous_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    warned: bool
    rate_slot_at: datetime | None


def _record(row: Any) -> EndpointRecord:
    return EndpointRecord(**{name: row._mapping[name] for name in COLUMNS})


_TABLE = WebhookEndpointRow.__table__  # type: ignore[attr-defined]


async def create(conn: AsyncConnection, owner: str, fields: Mapping[str, Any], *,
                 disabled: bool) -> EndpointRecord:
    """A new endpoint of `owner` with its own secret."""
    now = utcnow()
    values = {"id": new_id(), "owner": owner, "secret": new_secret(), "created_at": now,
              "updated_at": now, "warned": False, "description": "", "event_types": [],
              "models": [], "ordered": False, "payload": "full",
              "disabled_at": now if disabled else None,
              "disabled_reason": "disabled by its owner" if disabled else None,
              **{k: v for k, v in fields.items() if k in CHANGEABLE and v is not None}}
    row = (await conn.execute(insert(_TABLE).values(**values).returning(*_TABLE.columns))).one()
    return _record(row)


async def get(conn: AsyncConnection, owner: str, endpoint_id: str, *,
              lock: bool = False) -> EndpointRecord | None:
    """The owner's endpoint, or None (another owner's too)."""
    query = select(_TABLE).where(col(WebhookEndpointRow.id) == endpoint_id,
                                 col(WebhookEndpointRow.owner) == owner)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else _record(row)


async def page(conn: AsyncConnection, owner: str, *, after: str | None,
               limit: int) -> list[EndpointRecord]:
    """Up to `limit` of the owner's endpoints in id order, after the id `after`."""
    query = select(_TABLE).where(col(WebhookEndpointRow.owner) == owner)
    if after is not None:
        query = query.where(col(WebhookEndpointRow.id) > after)
    rows = await conn.execute(query.order_by(col(WebhookEndpointRow.id)).limit(limit))
    return [_record(row) for row in rows]


async def change(conn: AsyncConnection, owner: str, endpoint_id: str,
                 fields: Mapping[str, Any]) -> EndpointRecord | None:
    """Set `fields` (of CHANGEABLE) on the owner's endpoint; None when there is none."""
    values = {k: v for k, v in fields.items() if k in CHANGEABLE}
    statement = (update(_TABLE)
                 .where(col(WebhookEndpointRow.id) == endpoint_id,
                        col(WebhookEndpointRow.owner) == owner)
                 .values(**values, updated_at=utcnow()).returning(*_TABLE.columns))
    row = (await conn.execute(statement)).first()
    return None if row is None else _record(row)


SKIP_PENDING = text("""
UPDATE webhook_deliveries SET state = 'skipped', claim_id = NULL, finished_at = now(),
  last_error = :why
WHERE endpoint_id = :id AND state = 'pending'
""")
"""A disabled endpoint's queued deliveries (in flight ones too: their outcome is only logged)."""


DISABLE = text("""
UPDATE webhook_endpoints SET disabled_at = :now, disabled_reason = :reason, updated_at = :now
WHERE id = :id AND disabled_at IS NULL
""")

ENABLE = text("""
UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL,
  updated_at = :now
WHERE id = :id
""")


async def set_disabled(conn: Connection, endpoint_id: str, *, disabled: bool,
                       reason: str) -> None:
    """Disable (queued deliveries become `skipped`) or re-enable one endpoint (a new failing
    spell starts at its next failure; a warning given stays, so its next success is announced
    as `recovered`)."""
    if disabled:
        await execute(conn, DISABLE, {"id": endpoint_id, "reason": reason, "now": utcnow()})
        await execute(conn, SKIP_PENDING, {"id": endpoint_id,
                                           "why": f"not sent: endpoint disabled ({reason})"})
    else:
        await execute(conn, ENABLE, {"id": endpoint_id, "now": utcnow()})


FAIL_PENDING = text("""
UPDATE webhook_deliveries SET state = 'failed', claim_id = NULL, finished_at = now(),
  last_error = 'not sent: the endpoint was deleted'
WHERE endpoint_id = :id AND state = 'pending'
""")


async def remove(conn: AsyncConnection, owner: str, endpoint_id: str) -> bool:
    """Delete the owner's endpoint (its queued deliveries fail); False when there is none."""
    deleted = (await conn.execute(delete(_TABLE).where(
        col(WebhookEndpointRow.id) == endpoint_id,
        col(WebhookEndpointRow.owner) == owner).returning(col(WebhookEndpointRow.id)))).first()
    if deleted is None:
        return False
    await conn.execute(FAIL_PENDING, {"id": endpoint_id})
    return True


async def rotate(conn: AsyncConnection, owner: str, endpoint_id: str,
                 grace: timedelta) -> EndpointRecord | None:
    """A new secret; the current one keeps signing alongside it for `grace`."""
    now = utcnow()
    statement = (update(_TABLE)
                 .where(col(WebhookEndpointRow.id) == endpoint_id,
                        col(WebhookEndpointRow.owner) == owner)
                 .values(previous_secret=WebhookEndpointRow.secret, previous_expires_at=now + grace,
                         secret=new_secret(), updated_at=now)
                 .returning(*_TABLE.columns))
    row = (await conn.execute(statement)).first()
    return None if row is None else _record(row)


OF_OWNERS = text(f"""
SELECT {", ".join(COLUMNS)} FROM webhook_endpoints WHERE owner = ANY(CAST(:owners AS text[]))
ORDER BY id FOR SHARE
""")


async def of_owners(conn: Connection, owners: Sequence[str]) -> list[EndpointRecord]:
    """Every endpoint of these owners (disabled ones too), in id order, locked FOR SHARE: a
    disable waits for the caller's transaction, so rows it queues are skipped with the rest."""
    if not owners:
        return []
    rows = await fetch(conn, OF_OWNERS, {"owners": list(owners)})
    return [EndpointRecord(**{name: row[name] for name in COLUMNS}) for row in rows]


OWNERS_WITH_ENDPOINTS = text("""
SELECT DISTINCT owner FROM webhook_endpoints WHERE owner = ANY(CAST(:owners AS text[]))
""")


async def owners_with_endpoints(conn: Connection, owners: Sequence[str]) -> set[str]:
    """Those of `owners` that have at least one endpoint."""
    if not owners:
        return set()
    rows = await fetch(conn, OWNERS_WITH_ENDPOINTS, {"owners": sorted(set(owners))})
    return {row["owner"] for row in rows}


LOCK_HEALTH = text(f"""
SELECT {", ".join(COLUMNS)} FROM webhook_endpoints WHERE id = ANY(CAST(:ids AS text[]))
ORDER BY id FOR UPDATE
""")

SET_HEALTH = text("""
UPDATE webhook_endpoints SET failing_since = :failing_since, warned = :warned WHERE id = :id
""")


async def lock_health(conn: Connection, ids: Iterable[str]) -> list[EndpointRecord]:
    """These endpoints, locked, to update their health."""
    rows = await fetch(conn, LOCK_HEALTH, {"ids": sorted(ids)})
    return [EndpointRecord(**{name: row[name] for name in COLUMNS}) for row in rows]


async def set_health(conn: Connection, endpoint_id: str, *,
                     failing_since: datetime | None, warned: bool) -> None:
    """Store an endpoint's failing spell (None: healthy)."""
    await execute(conn, SET_HEALTH, {"id": endpoint_id, "failing_since": failing_since,
                                     "warned": warned})


def message(endpoint: EndpointRecord, event_type: str, data: dict[str, object],
            msg_id: str | None = None) -> outbox.NewDelivery:
    """One operational message (a test, an `inferhook.endpoint.*` event) to `endpoint`, under a
    new webhook-id unless given; `skipped` when the endpoint is disabled."""
    return outbox.NewDelivery(
        webhook_id=msg_id or f"msg_{uuid.uuid4().hex}", prediction_id="", owner=endpoint.owner,
        url=endpoint.url, event_type=event_type, sequence=0, body=orjson.dumps(data),
        due=utcnow(), endpoint_id=endpoint.id, skipped=endpoint.disabled_at is not None)


TAKE_SLOT = text("""
UPDATE webhook_endpoints
SET rate_slot_at = GREATEST(rate_slot_at, now()) + make_interval(secs => 1.0 / :rate)
WHERE id = :id
RETURNING EXTRACT(EPOCH FROM rate_slot_at - make_interval(secs => 1.0 / :rate) - now()) AS wait
""")
"""Zero-burst GCRA on Postgres's clock: send slots 1/rate s apart, whichever dispatcher
takes them (the row lock orders the takers)."""


async def take_slot(conn: Connection, endpoint_id: str, rate: int) -> float:
    """Reserve the endpoint's next send slot; seconds until it comes (0 when it is now)."""
    found = await fetch(conn, TAKE_SLOT, {"id": endpoint_id, "rate": rate})
    wait = found[0]["wait"] if found else None
    return max(0.0, float(wait)) if wait is not None else 0.0


RECOVER = text("""
WITH picked AS (
  SELECT id, row_number() OVER (ORDER BY created_at, prediction_id, sequence, id) AS n
  FROM webhook_deliveries
  WHERE endpoint_id = :id AND state IN ('failed', 'skipped')
    AND created_at >= :since AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until))
UPDATE webhook_deliveries d SET state = 'pending', attempts = 0, claim_id = NULL,
  finished_at = NULL, last_error = NULL,
  next_attempt_at = now() + make_interval(secs => picked.n * 0.000001),
  body = CASE WHEN length(d.body) > 0 THEN d.body ELSE convert_to(json_build_object(
    'id', d.prediction_id, 'type', d.event_type,
    'status', (SELECT p.status FROM predictions p WHERE p.id = d.prediction_id),
    'urls', json_build_object(
      'get', :base || d.prediction_id, 'cancel', :base || d.prediction_id || '/cancel',
      'events', :base || d.prediction_id || '/events',
      'stream', :base || d.prediction_id || '/stream'))::text, 'UTF8') END
FROM picked WHERE d.id = picked.id AND d.state IN ('failed', 'skipped')
""")
"""Queued again in the order they were made: due a microsecond apart, so claims (which take
due rows oldest first) keep that order. A body the retention sweep cleared (the prediction's
data expired) is sent thin (schemas.endpoints.thin_body's shape)."""


async def recover(conn: AsyncConnection, endpoint_id: str, since: datetime,
                  until: datetime | None, base_url: str) -> int:
    """Queue again every failed or skipped delivery of the endpoint made in [since, until)
    (`base_url`: the API's, for the links of a thin body standing in for a cleared one)."""
    result = await conn.execute(RECOVER, {"id": endpoint_id, "since": since, "until": until,
                                          "base": f"{base_url}/v1/predictions/"})
    return int(result.rowcount)


DELIVERIES = text("""
SELECT id, webhook_id, prediction_id, event_type, sequence, url, state, attempts,
  CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, created_at,
  finished_at, last_status, last_error, endpoint_id
FROM webhook_deliveries
WHERE endpoint_id = :id AND (CAST(:state AS text) IS NULL OR state = :state)
  AND (CAST(:before AS bigint) IS NULL OR id < :before)
ORDER BY id DESC LIMIT :limit
""")

DELIVERY_ATTEMPTS = text("""
SELECT delivery_id, attempt, started_at AS time, status AS status_code, latency_ms, error,
       response
FROM webhook_attempts WHERE delivery_id = ANY(CAST(:ids AS bigint[])) ORDER BY id
""")


async def deliveries(conn: AsyncConnection, endpoint_id: str, *, state: str | None,
                     before: int | None, limit: int) -> list[tuple[int, WebhookDelivery]]:
    """Up to `limit` deliveries of the endpoint (row id, delivery with its attempts), newest
    first, with row ids below `before`, in `state` when given."""
    rows = (await conn.execute(DELIVERIES, {"id": endpoint_id, "state": state,
                                            "before": before, "limit": limit})).all()
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for a in await conn.execute(DELIVERY_ATTEMPTS, {"ids": [r.id for r in rows]}):
        fields = {k: v for k, v in a._mapping.items() if k != "delivery_id"}
        by_delivery.setdefault(a.delivery_id, []).append(WebhookAttempt(**fields))
    return [(r.id, WebhookDelivery(**{k: v for k, v in r._mapping.items() if k != "id"},
                                   attempt_log=by_delivery.get(r.id, [])))
            for r in rows]


STATS = text("""
SELECT e.id, e.disabled_at IS NOT NULL AS disabled, e.failing_since IS NOT NULL AS failing,
  COALESCE(EXTRACT(EPOCH FROM now() - min(d.next_attempt_at)
           FILTER (WHERE d.next_attempt_at <= now() AND d.claim_id IS NULL)), 0) AS oldest_due_age,
  count(d.id) AS pending
FROM webhook_endpoints e
LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id AND d.state = 'pending'
GROUP BY e.id
""")


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint's state and backlog, for the metrics."""

    id: str
    disabled: bool
    failing: bool
    oldest_due_age: float
    pending: int


async def stats(conn: AsyncConnection) -> list[EndpointStats]:
    """Every endpoint's state, pending deliveries and the age of its oldest due one."""
    return [EndpointStats(r.id, bool(r.disabled), bool(r.failing), float(r.oldest_due_age),
                          int(r.pending)) for r in await conn.execute(STATS)]

"""`Idempotency-Key` reservations (`idempotency_keys`); the rules are in ingest.idempotency."""

from __future__ import annotations

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from store.records import Connection, execute

RESERVE = text("""
INSERT INTO idempotency_keys AS k (owner, key, body_hash, prediction_id, created_at, committed)
VALUES (:owner, :key, :body_hash, :prediction_id, now(), false)
ON CONFLICT (owner, key) DO UPDATE
  SET body_hash = EXCLUDED.body_hash, prediction_id = EXCLUDED.prediction_id,
      created_at = EXCLUDED.created_at, committed = false
  WHERE k.created_at < now() - make_interval(secs => :ttl)
     OR (NOT k.committed AND k.created_at < now() - make_interval(secs => :grace)
         AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.id = k.prediction_id))
RETURNING prediction_id
""")
EXISTING = text("SELECT body_hash, prediction_id FROM idempotency_keys WHERE owner = :owner AND key = :key")
COMMITTED = text("""
SELECT committed FROM idempotency_keys
WHERE owner = :owner AND key = :key AND prediction_id = :prediction_id
""")
RELEASE = text("""
DELETE FROM idempotency_keys
WHERE owner = :owner AND key = :key AND prediction_id = :prediction_id AND NOT committed
""")
COMMIT = text("""
UPDATE idempotency_keys SET committed = true
WHERE owner = :owner AND key = :key AND prediction_id = :prediction_id
""")


async def reserve(conn: AsyncConnection, owner: str, key: str, prediction_id: str, *,
                  body_hash: str, ttl: float, grace: float) -> bool:
    """Reserve `key` for `prediction_id`: True when it is ours now — new, older than `ttl`
    seconds, or left uncommitted for `grace` seconds with no prediction made."""
    won = (await conn.execute(RESERVE, {
        "owner": owner, "key": key, "prediction_id": prediction_id, "body_hash": body_hash,
        "ttl": ttl, "grace": grace})).scalar_one_or_none()
    return bool(won == prediction_id)


async def existing(conn: AsyncConnection, owner: str, key: str) -> Row[tuple[str, str]] | None:
    """(body_hash, prediction_id) of the key's reservation, if any."""
    row: Row[tuple[str, str]] | None = (await conn.execute(
        EXISTING, {"owner": owner, "key": key})).first()
    return row


async def committed(conn: AsyncConnection, owner: str, key: str,
                    prediction_id: str) -> bool | None:
    """Whether the key's reservation for `prediction_id` is committed; None without one."""
    value = (await conn.execute(COMMITTED, {"owner": owner, "key": key,
                                            "prediction_id": prediction_id})).scalar()
    return None if value is None else bool(value)


async def commit(conn: Connection, owner: str, key: str, prediction_id: str) -> None:
    """Mark the reservation as backed by a durable prediction."""
    await execute(conn, COMMIT, {"owner": owner, "key": key, "prediction_id": prediction_id})


async def release(conn: AsyncConnection, owner: str, key: str, prediction_id: str) -> None:
    """Delete an uncommitted reservation (its prediction could not be created)."""
    await conn.execute(RELEASE, {"owner": owner, "key": key, "prediction_id": prediction_id})

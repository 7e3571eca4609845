"""Statements about the Postgres server itself rather than a table."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PING = text("SELECT 1")
TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def ping(conn: AsyncConnection) -> None:
    """One round trip (readiness checks)."""
    await conn.execute(PING)


async def try_lock(conn: AsyncConnection, key: int) -> bool:
    """Take the transaction-scoped advisory lock `key` if nobody holds it (released at the
    end of the caller's transaction); False when another session has it."""
    return bool((await conn.execute(TRY_LOCK, {"key": key})).scalar_one())

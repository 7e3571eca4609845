"""API keys (stored hashed) and per-owner webhook signing secrets."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import utcnow
from schemas.tables import ApiKeyRow, WebhookSecretRow

KEY_PREFIX = "ih_"
OWNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def hash_key(key: str) -> str:
    """The digest a key is stored and looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(engine: AsyncEngine, owner: str) -> str:
    """Make a new API key for `owner` and return it (the only time it is shown)."""
    if not OWNER_NAME.match(owner):
        raise ValueError(f"owner must match {OWNER_NAME.pattern}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(insert(ApiKeyRow).values(
            key_hash=hash_key(key), owner=owner, prefix=key[:10], created_at=utcnow()))
    return key


async def owner_of(engine: AsyncEngine, key: str) -> str | None:
    """The owner of a live key, or None for an unknown or revoked one."""
    query = select(ApiKeyRow.owner).where(  # type: ignore[call-overload]
        ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.revoked_at.is_(None))  # type: ignore[union-attr]
    async with engine.connect() as conn:
        owner: str | None = (await conn.execute(query)).scalar_one_or_none()
    return owner


def new_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def webhook_secret(engine: AsyncEngine, owner: str) -> str:
    """The owner's signing secret, made on first use."""
    async with engine.begin() as conn:
        await conn.execute(insert(WebhookSecretRow).values(
            owner=owner, secret=new_secret(), created_at=utcnow()).on_conflict_do_nothing())
        query = select(WebhookSecretRow.secret).where(  # type: ignore[call-overload]
            WebhookSecretRow.owner == owner)
        secret: str = (await conn.execute(query)).scalar_one()
    return secret

"""API keys (stored hashed) and per-owner webhook signing secrets (`api_keys`, `webhook_secrets`)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from schemas.events import utcnow
from schemas.tables import ApiKeyRow, WebhookSecretRow

KEY_PREFIX = "ih_"
PREFIX_LENGTH = 10
"""Characters of a key kept in clear to name it (`ih_` and 7 more)."""
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
            key_hash=hash_key(key), owner=owner, prefix=key[:PREFIX_LENGTH], created_at=utcnow()))
    return key


@dataclass(frozen=True)
class KeyInfo:
    """What is known about one API key (never the key itself)."""

    key_hash: str
    owner: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


async def lookup_key(engine: AsyncEngine, key: str) -> KeyInfo | None:
    """The live key `key`, or None for an unknown or revoked one."""
    query = select(ApiKeyRow).where(col(ApiKeyRow.key_hash) == hash_key(key),
                                    col(ApiKeyRow.revoked_at).is_(None))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else KeyInfo(**row._mapping)


async def owner_of(engine: AsyncEngine, key: str) -> str | None:
    """The owner of a live key, or None for an unknown or revoked one."""
    info = await lookup_key(engine, key)
    return None if info is None else info.owner


async def list_keys(engine: AsyncEngine, owner: str | None = None) -> list[KeyInfo]:
    """Every key (of `owner`, when given), revoked ones included, oldest first."""
    query = select(ApiKeyRow).order_by(col(ApiKeyRow.created_at))
    if owner is not None:
        query = query.where(col(ApiKeyRow.owner) == owner)
    async with engine.connect() as conn:
        return [KeyInfo(**row._mapping) for row in await conn.execute(query)]


async def revoke_key(engine: AsyncEngine, key_or_prefix: str) -> KeyInfo:
    """Revoke one live key, named by itself or by the prefix `keys list` shows.

    ValueError when nothing or more than one live key matches. The ingest trusts a
    verified key for INFERHOOK_API_KEY_CACHE_SECONDS, so a revoked key stops working
    everywhere within that time.
    """
    match = (col(ApiKeyRow.key_hash) == hash_key(key_or_prefix)
             if len(key_or_prefix) > PREFIX_LENGTH else col(ApiKeyRow.prefix) == key_or_prefix)
    statement = (update(ApiKeyRow)
                 .where(match, col(ApiKeyRow.revoked_at).is_(None))
                 .values(revoked_at=utcnow())
                 .returning(*ApiKeyRow.__table__.columns))  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        revoked = [KeyInfo(**row._mapping) for row in await conn.execute(statement)]
        if len(revoked) != 1:
            # Leaving the block by an exception rolls the update back.
            raise ValueError(f"{len(revoked) or 'no'} live keys match {key_or_prefix!r}; "
                             "give the whole key")
    return revoked[0]


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


SIGNING_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"


def new_signing_key() -> str:
    """A fresh ed25519 private key for `v1a` signatures: `whsk_` + base64 of its 32-byte seed."""
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                      NoEncryption())
    return SIGNING_KEY_PREFIX + base64.b64encode(seed).decode()


def public_key_of(signing_key: str) -> str:
    """The `whpk_…` public key that verifies `v1a` signatures made with `signing_key`."""
    seed = base64.b64decode(signing_key.removeprefix(SIGNING_KEY_PREFIX))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return PUBLIC_KEY_PREFIX + base64.b64encode(
        public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(frozen=True)
class WebhookKeys:
    """Everything webhooks of one owner are signed with right now."""

    secret: str
    previous_secret: str | None = None
    """Still signing until `previous_expires_at` (secret rotation grace)."""
    previous_expires_at: datetime | None = None
    signing_key: str | None = None
    """ed25519 private key (`whsk_…`), when asymmetric signatures are on."""

    @property
    def secrets(self) -> list[str]:
        """The HMAC secrets to sign with: the current one first."""
        return [self.secret] + ([self.previous_secret] if self.previous_secret else [])


async def webhook_keys(engine: AsyncEngine, owner: str, *, ed25519: bool = False) -> WebhookKeys:
    """The owner's signing keys, made on first use; an expired previous secret is left out."""
    await webhook_secret(engine, owner)
    if ed25519:
        async with engine.begin() as conn:
            await conn.execute(update(WebhookSecretRow)
                               .where(col(WebhookSecretRow.owner) == owner,
                                      col(WebhookSecretRow.signing_key).is_(None))
                               .values(signing_key=new_signing_key()))
    async with engine.connect() as conn:
        row = (await conn.execute(select(WebhookSecretRow)
                                  .where(col(WebhookSecretRow.owner) == owner))).one()
    live = row.previous_expires_at is not None and row.previous_expires_at > utcnow()
    return WebhookKeys(secret=row.secret,
                       previous_secret=row.previous_secret if live else None,
                       previous_expires_at=row.previous_expires_at if live else None,
                       signing_key=row.signing_key if ed25519 else None)


async def rotate_webhook_secret(engine: AsyncEngine, owner: str, grace: timedelta) -> WebhookKeys:
    """Make a new secret; the current one keeps signing (alongside) for `grace`."""
    await webhook_secret(engine, owner)
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(update(WebhookSecretRow)
                           .where(col(WebhookSecretRow.owner) == owner)
                           .values(previous_secret=WebhookSecretRow.secret,
                                   previous_expires_at=now + grace,
                                   secret=new_secret(), created_at=now))
    return await webhook_keys(engine, owner)

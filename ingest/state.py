"""Typed application state, opened and closed by the app's cleanup contexts."""

from __future__ import annotations

from aiohttp import web
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.catalog import CatalogEntry
from inferhook.filelinks import FileLinks
from inferhook.settings import Settings
from inferhook.ssrf import HostResolver
from ingest.changes import ChangeFeed
from ingest.finished import FinishedCache
from ingest.keycache import KeyCache
from ingest.ratelimit import RateLimiter
from ingest.reads import SharedReads
from schemas.topics import Topics
from store.accounts import KeyInfo
from store.files import FileStore

SETTINGS = web.AppKey("settings", Settings)
TOPICS = web.AppKey("topics", Topics)
CATALOG = web.AppKey("catalog", dict[str, CatalogEntry])
ENGINE = web.AppKey("engine", AsyncEngine)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
CHANGES = web.AppKey("changes", ChangeFeed)
"""Wakes `Prefer: wait` requests and event streams when a prediction changes."""
KEYS = web.AppKey("keys", KeyCache)
FINISHED = web.AppKey("finished", FinishedCache)
"""Answers for terminal predictions (they never change until their data expires)."""
LIMITER = web.AppKey("limiter", RateLimiter)
SHARED_READS = web.AppKey("shared_reads", SharedReads)
"""Coalesces the reads of waiters woken together."""
RESOLVER = web.AppKey("resolver", HostResolver)
"""Webhook hosts' addresses, reused for a few seconds."""
FILES: web.AppKey[FileStore] = web.AppKey("files")
"""Uploads and outputs stored as files."""
LINKS = web.AppKey("links", FileLinks)
"""Makes and checks signed file content links."""
OPENAPI = web.AppKey("openapi", bytes)
"""The OpenAPI document, rendered once at start-up."""
OWNER = web.RequestKey("owner", str)
"""Request key holding the authenticated owner."""
API_KEY = web.RequestKey("api_key", KeyInfo)
"""Request key holding the API key the request was made with."""

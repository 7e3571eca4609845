"""Typed application state, opened and closed by the app's cleanup contexts."""

from __future__ import annotations

from aiohttp import web
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from inferhook.catalog import CatalogEntry
from inferhook.settings import Settings
from schemas.topics import Topics

SETTINGS = web.AppKey("settings", Settings)
TOPICS = web.AppKey("topics", Topics)
CATALOG = web.AppKey("catalog", dict[str, CatalogEntry])
ENGINE = web.AppKey("engine", AsyncEngine)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
OWNER = web.RequestKey("owner", str)
"""Request key holding the authenticated owner."""

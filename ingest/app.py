"""The ingest aiohttp application and its lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from inferhook import tracing
from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.kafka import create_producer, ensure_topics
from inferhook.settings import Settings
from ingest import (
    account,
    cancel,
    console,
    docs,
    history,
    models,
    predictions,
    queues,
    system,
    telemetry,
    webhooks,
)
from ingest.changes import ChangeFeed
from ingest.finished import FinishedCache
from ingest.keycache import KeyCache
from ingest.middleware import authenticate, problems
from ingest.ratelimit import RateLimiter
from ingest.state import (
    CATALOG,
    CHANGES,
    ENGINE,
    FINISHED,
    KEYS,
    LIMITER,
    PRODUCER,
    SETTINGS,
    SHARED_READS,
    TOPICS,
)
from ingest.store import SharedReads
from schemas.topics import Topics

log = logging.getLogger(__name__)


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database)
    app[ENGINE] = engine
    app[KEYS] = KeyCache(engine, settings.api.key_cache_seconds)
    yield
    await engine.dispose()


async def _changes(app: web.Application) -> AsyncIterator[None]:
    feed = ChangeFeed(app[SETTINGS].database.url.get_secret_value())
    feed.start()
    app[CHANGES] = feed
    try:
        yield
    finally:
        await feed.stop()


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings, topics = app[SETTINGS], app[TOPICS]
    await ensure_topics(settings.kafka, [topics.events, topics.control,
                                         *(topics.requests(name) for name in app[CATALOG])])
    producer = create_producer(settings.kafka, client_id="inferhook-ingest")
    await producer.start()
    app[PRODUCER] = producer
    try:
        yield
    finally:
        await producer.stop()


def build_app(settings: Settings) -> web.Application:
    """The API with its state; Kafka and Postgres connect when the app starts."""
    tracing.setup(settings.tracing, service="ingest")
    app = web.Application(middlewares=[telemetry.telemetry, problems, authenticate],
                          client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TOPICS] = Topics(settings.kafka.topic_prefix)
    app[CATALOG] = load_catalog(settings.models_dir)
    app[LIMITER] = RateLimiter(settings.api)
    app[FINISHED] = FinishedCache()
    app[SHARED_READS] = SharedReads()
    app.cleanup_ctx.extend([_postgres, _changes, _kafka])
    app.on_startup.append(docs.render_spec)
    for module in (predictions, cancel, history, models, account, system, docs, webhooks, queues,
                   console, telemetry):
        app.add_routes(module.routes)
    return app


def serve(settings: Settings) -> None:
    """Run the API until SIGINT/SIGTERM.

    Handler cancellation is on: a client hanging up cancels its handler, which frees a
    `Prefer: wait` waiter or a stream (creates shield their durable part).
    """
    log.info("ingest listening on %s", settings.base_url)
    web.run_app(build_app(settings), host=settings.host, port=settings.port, print=None,
                handler_cancellation=True, access_log=None)

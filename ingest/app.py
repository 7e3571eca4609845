"""The ingest aiohttp application and its lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.kafka import create_producer, ensure_topics
from inferhook.settings import Settings
from ingest import models, predictions, system, webhooks
from ingest.middleware import authenticate, problems
from ingest.state import CATALOG, ENGINE, PRODUCER, SETTINGS, TOPICS
from schemas.topics import Topics

log = logging.getLogger(__name__)


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database)
    app[ENGINE] = engine
    yield
    await engine.dispose()


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
    app = web.Application(middlewares=[problems, authenticate],
                          client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TOPICS] = Topics(settings.kafka.topic_prefix)
    app[CATALOG] = load_catalog(settings.models_dir)
    app.cleanup_ctx.extend([_postgres, _kafka])
    for table in (predictions.routes, models.routes, system.routes, webhooks.routes):
        app.add_routes(table)
    return app


def serve(settings: Settings) -> None:
    """Run the API until SIGINT/SIGTERM."""
    log.info("ingest listening on %s", settings.base_url)
    web.run_app(build_app(settings), host=settings.host, port=settings.port, print=None,
                access_log=None)

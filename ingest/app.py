"""The ingest aiohttp application and its lifecycle.

Ingest serves whatever Kafka and Postgres are doing (DESIGN.md, invariant 8): it starts
without either, connecting to Kafka in the background (creates answer 503 with
Retry-After until then), and a probe keeps `inferhook_dependency_up` current.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from inferhook import tracing
from inferhook.catalog import load_catalog
from inferhook.db import create_engine
from inferhook.filelinks import FileLinks
from inferhook.kafka import create_producer, ensure_topics
from inferhook.resilience import Dependency, retrying
from inferhook.settings import Settings
from inferhook.ssrf import HostResolver
from ingest import (
    account,
    cancel,
    console,
    docs,
    endpoints,
    executors,
    feed,
    files,
    history,
    models,
    predictions,
    queues,
    system,
    tasks,
    telemetry,
    webhooks,
)
from ingest.changes import ChangeFeed
from ingest.finished import FinishedCache
from ingest.keycache import KeyCache
from ingest.middleware import authenticate, problems
from ingest.position import THROUGHPUT, Throughput
from ingest.ratelimit import RateLimiter
from ingest.reads import SharedReads
from ingest.state import (
    CATALOG,
    CHANGES,
    ENGINE,
    FILES,
    FINISHED,
    KEYS,
    LIMITER,
    LINKS,
    PRODUCER,
    RESOLVER,
    SETTINGS,
    SHARED_READS,
    TOPICS,
)
from schemas.topics import Topics
from store.files import PostgresFiles

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


FIRST_TRY = 20.0
"""Seconds ingest waits at start for its first try to reach Kafka before serving without it."""


class LateProducer:
    """Ingest's producer, usable before Kafka first answered.

    Until `started` (set by the background start, see `_kafka`), sends and metadata
    lookups fail at once with KafkaConnectionError, so a create answers 503 at once rather
    than waiting on metadata that cannot come; afterwards every call goes to the producer,
    except while `reachable` is false (the probe found no broker answering): then they fail
    at once too, rather than each waiting out the producer's delivery timeout.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.started = False
        self.reachable = True
        self._last_ack = -math.inf

    def probed(self, answered: bool, began: float) -> None:
        """A probe that began at `began` (monotonic) found a broker answering, or none. An
        acknowledged send since it began outranks it: the next step of a create that just
        got through must not be refused on stale news."""
        if answered or began > self._last_ack:
            self.reachable = answered

    def _check(self) -> None:
        if not self.started:
            raise KafkaConnectionError("not connected to Kafka yet")
        if not self.reachable:
            raise KafkaConnectionError("no Kafka broker answers")

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return await self.producer.send(*args, **kwargs)

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        result = await self.producer.send_and_wait(*args, **kwargs)
        self._last_ack, self.reachable = time.monotonic(), True
        return result

    async def partitions_for(self, topic: str) -> Any:
        self._check()
        return await self.producer.partitions_for(topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings, topics = app[SETTINGS], app[TOPICS]
    producer = LateProducer(create_producer(settings.kafka, client_id="inferhook-ingest"))

    tried = asyncio.Event()

    async def connect() -> None:
        try:
            await ensure_topics(settings.kafka, [topics.events, topics.control,
                                                 *(topic for name in app[CATALOG]
                                                   for topic in topics.all_requests(name))])
            await producer.producer.start()
        finally:
            tried.set()
        producer.started = True
        log.info("ingest connected to Kafka at %s", settings.kafka.bootstrap)

    starting = asyncio.create_task(retrying("ingest producer", connect, uses=(Dependency.KAFKA,)))
    app[PRODUCER] = producer
    # Serve once the first try is over: with Kafka up, creates work from the first request;
    # with Kafka away (refused at once, or silent for FIRST_TRY seconds), serve regardless.
    with suppress(TimeoutError):
        await asyncio.wait_for(tried.wait(), timeout=FIRST_TRY)
    try:
        yield
    finally:
        starting.cancel()
        with suppress(asyncio.CancelledError):
            await starting
        await producer.producer.stop()


PROBE_WHILE_DOWN = 1.0
"""Seconds between dependency probes while one is down (otherwise the metrics refresh)."""


async def _probe(app: web.Application) -> AsyncIterator[None]:
    """Check Kafka and Postgres now and then: keeps the dependency gauge current even when
    nobody asks /readyz, and tells the producer whether any broker answers."""
    interval, producer = app[SETTINGS].metrics.refresh_seconds, app[PRODUCER]

    async def loop() -> None:
        while True:
            began = time.monotonic()
            checks = await system.check_dependencies(app)
            if producer.started:
                producer.probed(checks["kafka"] == "ok", began)
            down = any(v != "ok" for v in checks.values())
            await asyncio.sleep(PROBE_WHILE_DOWN if down else interval)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def build_app(settings: Settings) -> web.Application:
    """The API with its state; Kafka and Postgres connect when the app starts."""
    tracing.setup(settings.tracing, service="ingest")
    app = web.Application(middlewares=[telemetry.telemetry, problems, authenticate],
                          client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TOPICS] = Topics(settings.kafka.topic_prefix)
    app[CATALOG] = load_catalog(settings.models_dir)
    app[LIMITER] = RateLimiter(settings.api)
    app[THROUGHPUT] = Throughput()
    app[FINISHED] = FinishedCache()
    app[SHARED_READS] = SharedReads()
    app[RESOLVER] = HostResolver()
    app[FILES] = PostgresFiles()
    app[LINKS] = FileLinks(settings.base_url, settings.file_link_secret)
    app.cleanup_ctx.extend([_postgres, _changes, _kafka, _probe])
    app.on_startup.append(docs.render_spec)
    for module in (predictions, cancel, history, models, account, system, docs, webhooks, queues,
                   console, telemetry, files, tasks, feed, endpoints, executors):
        app.add_routes(module.routes)
    return app


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run the API until SIGINT/SIGTERM; with `reuse_port`, beside other processes
    listening on the same port (`inferhook ingest --workers N`).

    Handler cancellation is on: a client hanging up cancels its handler, which frees a
    `Prefer: wait` waiter or a stream (creates shield their durable part).
    """
    log.info("ingest listening on %s", settings.base_url)
    web.run_app(build_app(settings), host=settings.host, port=settings.port, print=None,
                handler_cancellation=True, access_log=None, reuse_port=reuse_port or None)

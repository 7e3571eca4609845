"""Prometheus metrics of every service, and the small /metrics server of the workers.

The collectors are module-level, registered once per process in prometheus_client's
default registry: a real process runs one service, and tests that run ingest, executors
and the dispatcher in one process (again and again) share them and read deltas. Ingest
serves them at `GET /metrics`; an executor or dispatcher serves them on its own port
(`INFERHOOK_METRICS_PORT`, off when 0).

Each collector's name is part of the contract with deploy/grafana/inferhook.json (a test
checks that every dashboard query names one of `ALL`). Labels stay bounded: routes are
canonical paths (`/v1/predictions/{prediction_id}`), never raw URLs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics import MetricWrapperBase

from inferhook.settings import MetricsSettings

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# ingest
HTTP_REQUESTS = Histogram(
    "inferhook_http_request_duration_seconds",
    "HTTP requests ingest answered, by method, route (canonical path) and status; "
    "_count is the request count.",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS)
PREDICTIONS_CREATED = Counter(
    "inferhook_predictions_created", "Predictions accepted by ingest (201), by model and priority.",
    ["model", "priority"])

# every service
DEPENDENCY_UP = Gauge(
    "inferhook_dependency_up",
    "Whether this process last got through to a dependency (kafka, postgres): 1 yes, 0 it is "
    "waiting for it.", ["dependency"])

# dispatcher: projection and webhooks
PREDICTIONS_COMPLETED = Counter(
    "inferhook_predictions_completed",
    "Predictions that reached a terminal status in the read model, by model and status.",
    ["model", "status"])
PROJECTION_LAG = Gauge(
    "inferhook_projection_lag_events",
    "Events on inferhook.events not yet projected into Postgres by this dispatcher "
    "(its partitions; sum over dispatchers).")
WEBHOOK_ATTEMPTS = Counter(
    "inferhook_webhook_attempts",
    "Webhook delivery attempts by outcome: success, redirect, client_error, server_error, error "
    "(no HTTP answer).", ["outcome"])
WEBHOOK_LATENCY = Histogram(
    "inferhook_webhook_attempt_duration_seconds", "Seconds one webhook attempt took.",
    buckets=LATENCY_BUCKETS)
OUTBOX_PENDING = Gauge(
    "inferhook_outbox_pending", "Webhook deliveries waiting in the outbox (due or scheduled later).")
OUTBOX_DUE = Gauge("inferhook_outbox_due", "Webhook deliveries due now and not yet being attempted.")
OUTBOX_OLDEST_DUE_AGE = Gauge(
    "inferhook_outbox_oldest_due_age_seconds",
    "How long the oldest due webhook delivery has been due (0 when none is).")
ENDPOINT_ATTEMPTS = Counter(
    "inferhook_endpoint_attempts",
    "Attempts to one account webhook endpoint by outcome (as inferhook_webhook_attempts).",
    ["endpoint", "outcome"])
ENDPOINT_OLDEST_DUE_AGE = Gauge(
    "inferhook_endpoint_oldest_due_age_seconds",
    "How long the oldest due delivery to one account endpoint has been due (0 when none is).",
    ["endpoint"])
ENDPOINT_PENDING = Gauge(
    "inferhook_endpoint_pending", "Deliveries to one account endpoint waiting in the outbox.",
    ["endpoint"])
ENDPOINT_STATE = Gauge(
    "inferhook_endpoint_state",
    "State of one account endpoint: 0 healthy, 1 failing, 2 disabled.", ["endpoint"])

# executors
QUEUE_DEPTH = Gauge(
    "inferhook_queue_depth",
    "Requests of a model not yet consumed: its request topic's high-water mark minus this "
    "executor's position, over the partitions it holds (sum over executors), by model and "
    "priority (one request topic each).", ["model", "priority"])
BATCH_SIZE = Histogram(
    "inferhook_executor_batch_size", "Predictions run together in one batch, by model.", ["model"],
    buckets=BATCH_BUCKETS)
RUN_SECONDS = Histogram(
    "inferhook_executor_run_seconds",
    "Seconds one batch run took (pre-processing, ONNX Runtime, post-processing), by model.",
    ["model"], buckets=LATENCY_BUCKETS)
COLD_STARTS = Counter(
    "inferhook_executor_cold_starts", "Models loaded on demand for a waiting prediction.", ["model"])
LOAD_SECONDS = Histogram(
    "inferhook_executor_load_seconds", "Seconds a cold start took to load its model.", ["model"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0))
RETRIES = Counter(
    "inferhook_executor_retries",
    "Runs started again after an attempt was lost to infrastructure, by model and cause "
    "(crashed: the previous executor vanished; load_failed: the model would not load).",
    ["model", "cause"])
INFRASTRUCTURE_FAILURES = Counter(
    "inferhook_executor_infrastructure_failures",
    "Predictions failed `infrastructure` (retries spent) and dead-lettered, by model.", ["model"])

# supervisor (cli.autoscale)
EXECUTOR_REPLICAS = Gauge(
    "inferhook_executor_replicas", "Executor processes the supervisor runs for a model.", ["model"])
QUEUE_BACKLOG = Gauge(
    "inferhook_queue_backlog",
    "Requests of a model not committed by the executors group (waiting or running), as the "
    "supervisor scales on it.", ["model"])
SCALING_DECISIONS = Counter(
    "inferhook_scaling_decisions",
    "Supervisor decisions that started or stopped executors, by model, direction (up, down) "
    "and rule (a, backlog, idle, below, above).", ["model", "direction", "rule"])

ALL: tuple[MetricWrapperBase, ...] = (
    DEPENDENCY_UP, HTTP_REQUESTS, PREDICTIONS_CREATED, PREDICTIONS_COMPLETED, PROJECTION_LAG,
    WEBHOOK_ATTEMPTS, WEBHOOK_LATENCY, OUTBOX_PENDING, OUTBOX_DUE, OUTBOX_OLDEST_DUE_AGE,
    ENDPOINT_ATTEMPTS, ENDPOINT_OLDEST_DUE_AGE, ENDPOINT_PENDING, ENDPOINT_STATE,
    QUEUE_DEPTH, BATCH_SIZE, RUN_SECONDS, COLD_STARTS, LOAD_SECONDS, RETRIES,
    INFRASTRUCTURE_FAILURES, EXECUTOR_REPLICAS, QUEUE_BACKLOG, SCALING_DECISIONS)
"""Every inferhook collector (the dashboard may name only these)."""


def exposed_names() -> set[str]:
    """Every sample name the collectors in `ALL` can expose (`_total`, `_bucket`, … included)."""
    names: set[str] = set()
    for metric in ALL:
        for family in metric.describe():
            base = family.name
            if family.type == "counter":
                names |= {f"{base}_total", f"{base}_created"}
            elif family.type == "histogram":
                names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum", f"{base}_created"}
            else:
                names.add(base)
    return names


def webhook_outcome(status: int | None) -> str:
    """The `outcome` label of an attempt answered with `status` (None: no HTTP answer)."""
    if status is None:
        return "error"
    if 200 <= status < 300:
        return "success"
    if 300 <= status < 400:
        return "redirect"
    return "client_error" if status < 500 else "server_error"


def exposition() -> bytes:
    """The process's metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)


async def metrics_handler(request: web.Request) -> web.Response:
    """Answer a scrape."""
    response = web.Response(body=exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    return response


@asynccontextmanager
async def serving(settings: MetricsSettings) -> AsyncIterator[None]:
    """Serve GET /metrics on `settings.port` while the block runs (nothing when the port is 0)."""
    if not settings.port:
        yield
        return
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.port)
        yield
    finally:
        await runner.cleanup()


async def consumer_lag(consumer: AIOKafkaConsumer, *, applied: dict[TopicPartition, int] | None = None,
                       topics: Iterable[str] = ()) -> dict[str, int]:
    """Records not yet consumed per topic, over the partitions `consumer` holds now.

    A partition's lag is its high-water mark (as of the last fetch) minus `applied[tp]` when
    given (the next offset whose effect is done), else minus the consumer's position;
    partitions not fetched from yet are left out. `topics` are reported (0) even when none
    of their partitions is held, so a moved-away partition does not leave a stale value.
    """
    lag: dict[str, int] = dict.fromkeys(topics, 0)
    for tp in consumer.assignment():
        try:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            # Fetched from, so the position is known and position() answers at once.
            position = (applied or {}).get(tp)
            if position is None:
                position = await consumer.position(tp)
        except (IllegalStateError, AssertionError):  # revoked meanwhile
            continue
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
    return lag

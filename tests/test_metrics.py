"""Prometheus metrics: present on every service and moving under load; the dashboard names real ones."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferhook.metrics import exposed_names, serving
from inferhook.settings import REPO_ROOT, MetricsSettings, Settings
from tests.support import (
    Receiver,
    Stack,
    example_input,
    free_port,
    start_dispatcher_process,
    start_executor_process,
    wait_until,
)

DIGITS = "inferhook/digits"
SPIN = "inferhook/spin"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "inferhook.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Gauges that need a query refresh every 0.2 s, so a short test sees them."""
    settings.metrics = MetricsSettings(refresh_seconds=0.2)
    return settings


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def has(samples: Samples, name: str, **labels: str) -> bool:
    """True when a sample of `name` with `labels` is exposed."""
    wanted = set(labels.items())
    return any(n == name and wanted <= have for n, have in samples)


async def scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return parse(await response.text())


def dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, item in node.items():
            if key == "expr" and isinstance(item, str):
                yield item
            else:
                yield from dashboard_exprs(item)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def test_dashboard_queries_only_metrics_the_code_defines() -> None:
    exprs = list(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    assert len(exprs) >= 15
    defined = exposed_names()
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\binferhook_[a-z0-9_]+", expr))
        assert names, f"query names no inferhook metric: {expr}"
        assert names <= defined, f"{expr} names undefined {sorted(names - defined)}"
        used |= names
    bases = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in defined}
    unused = {b for b in bases if not any(n.startswith(b) for n in used)}
    assert not unused, f"metrics no panel shows: {sorted(unused)}"


async def test_metrics_move_under_a_short_load(stack: Stack, receiver: Receiver) -> None:
    metrics_url = f"{stack.base_url}/metrics"
    before = await scrape(stack.http, metrics_url)
    count = 5
    body = {"model": DIGITS, "input": example_input(stack.settings, DIGITS), "webhook": receiver.url,
            "webhook_events_filter": ["completed"]}
    ids = []
    for _ in range(count):
        response = await stack.create(body)
        assert response.status == 201
        ids.append((await response.json())["id"])
    for prediction_id in ids:
        assert (await stack.wait_terminal(prediction_id))["status"] == "succeeded"
    await receiver.wait_for(count)

    async def settled() -> bool:
        after = await scrape(stack.http, metrics_url)
        return (value(after, "inferhook_webhook_attempts_total", outcome="success")
                - value(before, "inferhook_webhook_attempts_total", outcome="success")) >= count

    await wait_until(settled, timeout=10, what="webhook attempts counted")
    after = await scrape(stack.http, metrics_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("inferhook_predictions_created_total", model=DIGITS) == count
    assert delta("inferhook_predictions_completed_total", model=DIGITS, status="succeeded") == count
    assert delta("inferhook_http_request_duration_seconds_count", method="POST",
                 route="/v1/predictions", status="201") == count
    assert delta("inferhook_http_request_duration_seconds_count", method="GET",
                 route="/v1/predictions/{prediction_id}", status="200") >= count
    assert delta("inferhook_http_request_duration_seconds_sum", route="/v1/predictions") > 0
    assert delta("inferhook_executor_batch_size_count", model=DIGITS) >= 1
    assert delta("inferhook_executor_batch_size_sum", model=DIGITS) == count
    assert delta("inferhook_executor_run_seconds_count", model=DIGITS) >= 1
    assert delta("inferhook_webhook_attempts_total", outcome="success") == count
    assert delta("inferhook_webhook_attempt_duration_seconds_count") == count
    # Gauges: present, and the queue of a drained model is empty.
    assert has(after, "inferhook_queue_depth", model=DIGITS)
    assert value(after, "inferhook_queue_depth", model=DIGITS) == 0
    for gauge in ("inferhook_projection_lag_events", "inferhook_outbox_pending",
                  "inferhook_outbox_due", "inferhook_outbox_oldest_due_age_seconds"):
        assert has(after, gauge), gauge
    # Routes are labelled by their canonical path, never by a raw URL.
    routes = {dict(labels).get("route") for name, labels in after
              if name.startswith("inferhook_http_request")}
    assert not any(prediction_id in str(routes) for prediction_id in ids)


async def test_unknown_urls_share_one_route_label(stack: Stack) -> None:
    before = await scrape(stack.http, f"{stack.base_url}/metrics")
    for path in ("/nope/1", "/nope/2"):
        async with stack.http.get(f"{stack.base_url}{path}", headers=stack.auth()) as response:
            assert response.status == 404
    after = await scrape(stack.http, f"{stack.base_url}/metrics")
    name = "inferhook_http_request_duration_seconds_count"
    assert (value(after, name, route="unmatched", status="404")
            - value(before, name, route="unmatched", status="404")) == 2


async def test_metrics_server_serves_the_process_registry() -> None:
    settings = MetricsSettings(port=free_port())
    async with serving(settings), aiohttp.ClientSession() as http:
        samples = await scrape(http, f"http://127.0.0.1:{settings.port}/metrics")
    assert has(samples, "python_info")
    async with serving(MetricsSettings(port=0)):
        pass  # port 0: no server, nothing to clean up


async def test_worker_processes_serve_their_own_metrics(settings: Settings, clean_db: None,
                                                       receiver: Receiver) -> None:
    executor_port, dispatcher_port = free_port(), free_port()
    refresh = {"INFERHOOK_METRICS_REFRESH_SECONDS": "0.2"}
    executor = start_executor_process(settings, SPIN, INFERHOOK_EXECUTOR_MODE="pooled",
                                      INFERHOOK_METRICS_PORT=str(executor_port), **refresh)
    dispatcher = start_dispatcher_process(settings, INFERHOOK_METRICS_PORT=str(dispatcher_port),
                                          **refresh)
    try:
        async with Stack.running(settings, executor=False, dispatcher=False) as stack:
            response = await stack.create({"model": SPIN, "input": {"milliseconds": 10},
                                           "webhook": receiver.url,
                                           "webhook_events_filter": ["completed"]})
            assert response.status == 201
            prediction_id = (await response.json())["id"]
            assert (await stack.wait_terminal(prediction_id, timeout=90))["status"] == "succeeded"
            await receiver.wait_for(1)
            executor_url = f"http://127.0.0.1:{executor_port}/metrics"
            dispatcher_url = f"http://127.0.0.1:{dispatcher_port}/metrics"

            async def counted() -> bool:
                samples = await scrape(stack.http, dispatcher_url)
                return value(samples, "inferhook_webhook_attempts_total", outcome="success") == 1

            await wait_until(counted, timeout=10, what="the dispatcher counting its attempt")
            worker = await scrape(stack.http, executor_url)
            projector = await scrape(stack.http, dispatcher_url)
    finally:
        for process in (executor, dispatcher):
            process.send_signal(signal.SIGTERM)
        for process in (executor, dispatcher):
            try:
                await asyncio.to_thread(process.wait, 30)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
    assert value(worker, "inferhook_executor_cold_starts_total", model=SPIN) == 1
    assert value(worker, "inferhook_executor_load_seconds_count", model=SPIN) == 1
    assert value(worker, "inferhook_executor_batch_size_sum", model=SPIN) == 1
    assert has(worker, "inferhook_queue_depth", model=SPIN)
    assert value(projector, "inferhook_predictions_completed_total", model=SPIN,
                 status="succeeded") == 1
    assert has(projector, "inferhook_projection_lag_events")
    assert has(projector, "inferhook_outbox_oldest_due_age_seconds")
    assert not has(worker, "inferhook_predictions_completed_total", model=SPIN)

"""One prediction, one trace: traceparent from the HTTP request through Kafka to the webhook;
log lines carry the prediction id."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from inferhook.logs import DevFormatter, JsonFormatter, PredictionContext
from inferhook.settings import Settings
from schemas.events import EventType
from tests.support import Receiver, Stack, example_input

DIGITS = "inferhook/digits"


def trace_id_of(traceparent: str) -> str:
    """The trace id of a W3C traceparent (version 00), checked for shape."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, len(trace_id), len(span_id), len(flags)) == ("00", 32, 16, 2), traceparent
    return trace_id


async def event_headers(settings: Settings, prediction_id: str, count: int,
                        timeout: float = 20.0) -> dict[str, dict[str, str]]:
    """Headers of the first `count` events of a prediction on inferhook.events, by ce_type."""
    consumer = AIOKafkaConsumer(f"{settings.kafka.topic_prefix}.events",
                                bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("ce_subject") == prediction_id:
                        found[headers["ce_type"]] = headers
    finally:
        await consumer.stop()
    return found


async def create_with_webhook(stack: Stack, receiver: Receiver,
                              headers: dict[str, str] | None = None) -> str:
    response = await stack.create({"model": DIGITS, "input": example_input(stack.settings, DIGITS),
                                   "webhook": receiver.url, "webhook_events_filter": ["completed"]},
                                  headers=headers)
    assert response.status == 201
    prediction_id: str = (await response.json())["id"]
    return prediction_id


async def test_one_trace_id_from_create_to_webhook(stack: Stack, receiver: Receiver) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    prediction_id = await create_with_webhook(
        stack, receiver, {"traceparent": f"00-{trace_id}-{caller_span}-01"})
    (delivery,) = await receiver.wait_for(1)
    assert delivery.json()["id"] == prediction_id
    assert trace_id_of(delivery.headers["traceparent"]) == trace_id
    events = await event_headers(stack.settings, prediction_id, 3)
    created, started, succeeded = (events[t.value] for t in (
        EventType.CREATED, EventType.STARTED, EventType.SUCCEEDED))
    assert {trace_id_of(e["traceparent"]) for e in (created, started, succeeded)} == {trace_id}
    # Each hop is a span of its own: ingest's under the caller's, the executor's under ingest's.
    spans = [e["traceparent"].split("-")[2] for e in (created, succeeded)]
    spans.append(delivery.headers["traceparent"].split("-")[2])
    assert len({caller_span, *spans}) == 4


async def test_a_request_without_traceparent_starts_a_trace(stack: Stack,
                                                            receiver: Receiver) -> None:
    prediction_id = await create_with_webhook(stack, receiver)
    (delivery,) = await receiver.wait_for(1)
    created = (await event_headers(stack.settings, prediction_id, 1))[EventType.CREATED.value]
    trace_id = trace_id_of(created["traceparent"])
    assert trace_id != "0" * 32
    assert trace_id_of(delivery.headers["traceparent"]) == trace_id


async def test_log_lines_carry_the_prediction_id(stack: Stack, receiver: Receiver,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(PredictionContext())
    caplog.set_level(logging.INFO)
    prediction_id = await create_with_webhook(stack, receiver)
    await stack.wait_terminal(prediction_id)
    mine = [r for r in caplog.records if getattr(r, "prediction_id", None) == prediction_id]
    assert any(r.name == "executors.job" and "succeeded" in r.getMessage() for r in mine), \
        [(r.name, r.getMessage(), getattr(r, "prediction_id", None)) for r in caplog.records]
    record = next(r for r in mine if r.name == "executors.job")
    entry: dict[str, Any] = json.loads(JsonFormatter().format(record))
    assert entry["prediction_id"] == prediction_id
    line = DevFormatter("executor").format(record)
    assert f"executors.job: […{prediction_id[-8:]}] prediction {prediction_id}" in line
    unbound = logging.LogRecord("x", logging.INFO, __file__, 1, "no prediction here", None, None)
    PredictionContext().filter(unbound)
    assert "prediction_id" not in json.loads(JsonFormatter().format(unbound))
    assert "[" not in DevFormatter("ingest").format(unbound)

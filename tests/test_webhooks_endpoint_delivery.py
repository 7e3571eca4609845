"""Account endpoint delivery rules with real Kafka and Postgres: rate limits, ordered
delivery through failures, disable without loss and recovery.

Events are written straight to the events topic (made-up predictions of alice); ingest and
the dispatcher run in this event loop; receivers on loopback script their answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from standardwebhooks import Webhook

from inferhook.settings import Settings
from schemas.events import TERMINAL_SEQUENCE, Completed, Created, EventType, Logs, Started, utcnow
from tests.support import EventWriter, Receiver, Stack, dispatcher_running, query, wait_until
from tests.test_webhooks_endpoints import ROOT, call, make_endpoint

SEQUENCES = [0, 2, 3, TERMINAL_SEQUENCE]
"""created, started, logs, succeeded."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short spells: disabled after 3 s of failures, breakers that reopen quickly; full
    payloads over 200 bytes (every one here) are sent thin."""
    settings.webhook.disable_after = 3.0
    settings.webhook.breaker_cooldown = 0.2
    settings.webhook.max_payload_bytes = 200
    return settings


async def run_prediction(events: EventWriter, owner: str = "alice") -> str:
    pid = str(uuid.uuid4())
    await events.send(pid, 0, Created(owner=owner, model="inferhook/digits", input={"n": 1},
                                      created_at=utcnow()))
    await events.send(pid, 2, Started(started_at=utcnow()))
    await events.send(pid, 3, Logs(logs="working\n"))
    await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                            Completed(completed_at=utcnow(), output=7))
    return pid


async def endpoint_rows(settings: Settings, endpoint_id: str) -> list[dict[str, Any]]:
    return await query(settings, "SELECT * FROM webhook_deliveries WHERE endpoint_id = :e "
                                 "ORDER BY id", e=endpoint_id)


def by_prediction(receiver: Receiver, secret: str) -> dict[str, list[int]]:
    """Sequence numbers each prediction's requests carried, in arrival order (verified)."""
    seen: dict[str, list[int]] = defaultdict(list)
    for r in receiver.requests:
        body = Webhook(secret).verify(r.body, r.headers)
        seen[body["id"]].append(int(r.headers["inferhook-sequence"]))
    return seen


async def test_rate_limited_endpoint_never_exceeds_its_rate(idle_stack: Stack,
                                                            receiver: Receiver) -> None:
    rate = 4
    endpoint = await make_endpoint(idle_stack, receiver.url, rate_limit=rate)
    async with EventWriter(idle_stack.settings) as events:
        pids = [await run_prediction(events) for _ in range(3)]
    await receiver.wait_for(len(pids) * len(SEQUENCES))
    bodies = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in receiver.requests]
    assert all(set(b) == {"id", "type", "status", "urls"} for b in bodies), "over the cap: thin"
    assert {b["type"] for b in bodies} == {"inferhook.prediction.created",
                                           "inferhook.prediction.started",
                                           "inferhook.prediction.logs",
                                           "inferhook.prediction.succeeded"}
    rows = await endpoint_rows(idle_stack.settings, endpoint["id"])
    assert {r["state"] for r in rows} == {"delivered"} and len(rows) == 12
    attempts = await query(idle_stack.settings,
                           "SELECT started_at FROM webhook_attempts a JOIN webhook_deliveries d "
                           "ON d.id = a.delivery_id WHERE d.endpoint_id = :e ORDER BY started_at",
                           e=endpoint["id"])
    starts = [a["started_at"].timestamp() for a in attempts]
    assert len(starts) == 12
    # any `rate` + 1 consecutive starts span a second (1 ms for the wall clock's rounding)
    assert min(b - a for a, b in zip(starts, starts[rate:], strict=False)) >= 1.0 - 0.001


async def test_ordered_endpoint_keeps_each_predictions_order_through_failures(
        idle_stack: Stack, receiver: Receiver) -> None:
    endpoint = await make_endpoint(idle_stack, receiver.url, ordered=True)
    receiver.statuses = [500, 500, 500]
    async with EventWriter(idle_stack.settings) as events:
        pids = [await run_prediction(events) for _ in range(2)]

    async def all_delivered() -> bool:
        rows = await endpoint_rows(idle_stack.settings, endpoint["id"])
        return len(rows) == 8 and all(r["state"] == "delivered" for r in rows)
    await wait_until(all_delivered, what="every event delivered")
    seen = by_prediction(receiver, endpoint["secret"])
    assert len(receiver.requests) == 8 + 3
    for pid in pids:
        # retries repeat a sequence; none is sent before the one before it was delivered
        assert seen[pid] == sorted(seen[pid]) and sorted(set(seen[pid])) == SEQUENCES


async def test_disable_without_loss_then_recover_in_order(idle_stack: Stack) -> None:
    settings = idle_stack.settings
    since = datetime.now(UTC)
    async with Receiver.running() as down, Receiver.running() as watcher:
        down.statuses = [503] * 10_000
        endpoint = await make_endpoint(idle_stack, down.url, ordered=True)
        watch = await make_endpoint(idle_stack, watcher.url, event_types=[
            "inferhook.endpoint.failing", "inferhook.endpoint.disabled",
            "inferhook.endpoint.recovered"])
        pids: list[str] = []

        async def disabled() -> bool:
            _, shown = await call(idle_stack, "GET", f"{ROOT}/{endpoint['id']}")
            return bool(shown["disabled"])

        async with EventWriter(settings) as events:
            while not await disabled():  # events keep coming while it fails
                pids.append(await run_prediction(events))
                await asyncio.sleep(0.3)
                assert len(pids) < 100, "never disabled"
            pids += [await run_prediction(events) for _ in range(2)]  # while disabled

        await watcher.wait_for(2)
        notices = [Webhook(watch["secret"]).verify(r.body, r.headers) for r in watcher.requests]
        assert [n["type"] for n in notices] == ["inferhook.endpoint.failing",
                                                "inferhook.endpoint.disabled"]
        assert {n["endpoint_id"] for n in notices} == {endpoint["id"]}

        async def settled() -> bool:
            rows = await endpoint_rows(settings, endpoint["id"])
            return len(rows) == 4 * len(pids) and all(r["state"] != "pending" for r in rows)
        await wait_until(settled, what="every delivery failed or skipped")
        rows = await endpoint_rows(settings, endpoint["id"])
        skipped = {r["prediction_id"] for r in rows if r["state"] == "skipped"}
        assert set(pids[-2:]) <= skipped
        _, page = await call(idle_stack, "GET",
                             f"{ROOT}/{endpoint['id']}/deliveries?status=skipped&limit=200")
        assert {d["prediction_id"] for d in page["results"]} == skipped

        failed_before = len(down.requests)
        down.statuses = []
        status, _ = await call(idle_stack, "PATCH", f"{ROOT}/{endpoint['id']}",
                               {"disabled": False})
        assert status == 200
        status, recovered = await call(idle_stack, "POST", f"{ROOT}/{endpoint['id']}/recover",
                                       {"since": since.isoformat()})
        assert status == 202
        assert recovered["requeued"] == sum(r["state"] in ("failed", "skipped") for r in rows)

        async def all_delivered() -> bool:
            rows = await endpoint_rows(settings, endpoint["id"])
            return all(r["state"] == "delivered" for r in rows)
        await wait_until(all_delivered, what="every delivery recovered")
        after = Receiver(requests=down.requests[failed_before:])
        seen = by_prediction(after, endpoint["secret"])
        assert set(seen) >= set(pids[-2:])
        for sequences in seen.values():
            assert sequences == sorted(sequences)
        delivered = {(r["prediction_id"], r["sequence"])
                     for r in await endpoint_rows(settings, endpoint["id"])}
        assert delivered == {(pid, s) for pid in pids for s in SEQUENCES}

        await watcher.wait_for(3)
        last = Webhook(watch["secret"]).verify(watcher.requests[2].body,
                                               watcher.requests[2].headers)
        assert last["type"] == "inferhook.endpoint.recovered"

    on_kafka = await _endpoint_events_on_kafka(settings, endpoint["id"])
    assert [t for t, _ in on_kafka[:3]] == ["inferhook.endpoint.failing",
                                            "inferhook.endpoint.disabled",
                                            "inferhook.endpoint.recovered"]
    # one event id: the webhook-id the other endpoint got is the Kafka ce_id
    assert [i for _, i in on_kafka[:3]] == [r.headers["webhook-id"] for r in watcher.requests[:3]]


async def _endpoint_events_on_kafka(settings: Settings,
                                    endpoint_id: str) -> list[tuple[str, str]]:
    """(ce_type, ce_id) of the endpoint's events on the event topic, in order."""
    consumer = AIOKafkaConsumer(f"{settings.kafka.topic_prefix}.events",
                                bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found: list[tuple[str, str]] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(found) < 3 and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == endpoint_id.encode():
                        headers = dict(record.headers)
                        assert orjson.loads(record.value or b"")["endpoint_id"] == endpoint_id
                        found.append((headers["ce_type"].decode(), headers["ce_id"].decode()))
        return found
    finally:
        await consumer.stop()


async def test_a_hanging_endpoint_does_not_hold_another_back(idle_stack: Stack) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async with Receiver.running() as stuck, Receiver.running() as healthy:
        stuck.responders = [hang] * 1000
        await make_endpoint(idle_stack, stuck.url)
        fine = await make_endpoint(idle_stack, healthy.url)
        async with EventWriter(idle_stack.settings) as events:
            pids = [await run_prediction(events) for _ in range(10)]
        # every event reaches the healthy endpoint while the other has answered nothing
        await healthy.wait_for(len(pids) * len(SEQUENCES))
        assert not release.is_set() and stuck.requests
        assert set(by_prediction(healthy, fine["secret"])) == set(pids)
        release.set()


async def test_two_dispatchers_share_one_endpoints_rate(idle_stack: Stack,
                                                        receiver: Receiver) -> None:
    rate = 4
    endpoint = await make_endpoint(idle_stack, receiver.url, rate_limit=rate)
    async with dispatcher_running(idle_stack.settings, project=False, housekeeping=False):
        async with EventWriter(idle_stack.settings) as events:
            for _ in range(4):
                await run_prediction(events)
        await receiver.wait_for(16)
    attempts = await query(idle_stack.settings,
                           "SELECT started_at FROM webhook_attempts a JOIN webhook_deliveries d "
                           "ON d.id = a.delivery_id WHERE d.endpoint_id = :e ORDER BY started_at",
                           e=endpoint["id"])
    starts = [a["started_at"].timestamp() for a in attempts]
    assert len(starts) == 16
    # each worker alone keeps its own second exactly; together they share Postgres's slots,
    # 1/rate s apart: `rate` + 1 starts span a second, less the jitter of two workers
    # waking (two unshared windows would let them span half of it)
    assert min(b - a for a, b in zip(starts, starts[rate:], strict=False)) >= 0.9

"""Webhook delivery against misbehaving receivers, with real Kafka and Postgres.

Events are written straight to the events topic; the dispatcher runs in this event loop
(projector and outbox), and receivers on loopback script their answers.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from dispatcher.backoff import Next
from dispatcher.outbox import EVENT_HEADER, SEQUENCE_HEADER, OutboxWorker, Outcome
from dispatcher.sender import Attempt, client_session
from inferhook.db import create_engine
from inferhook.settings import Settings
from schemas.events import (
    TERMINAL_SEQUENCE,
    Completed,
    Created,
    EventType,
    Logs,
    Output,
    Started,
    utcnow,
)
from schemas.webhooks import DeliveryState
from store.accounts import webhook_secret
from tests.support import EventWriter, Receiver, dispatcher_running, query, wait_until

pytestmark = pytest.mark.usefixtures("clean_db")


def new_id() -> str:
    return str(uuid.uuid4())


async def start_prediction(events: EventWriter, url: str, *, filter: list[str] | None = None,
                           owner: str = "alice") -> str:
    pid = new_id()
    await events.send(pid, 0, Created(owner=owner, model="inferhook/digits", input={"n": 1},
                                      webhook=url, webhook_events_filter=filter or ["completed"],
                                      created_at=utcnow()))
    return pid


async def finish(events: EventWriter, pid: str, output: Any = "done") -> None:
    await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                            Completed(completed_at=utcnow(), output=output))


async def secret_of(settings: Settings, owner: str = "alice") -> str:
    engine = create_engine(settings.database)
    try:
        return await webhook_secret(engine, owner)
    finally:
        await engine.dispose()


async def deliveries(settings: Settings, pid: str) -> list[dict[str, Any]]:
    return await query(settings, "SELECT * FROM webhook_deliveries WHERE prediction_id = :p "
                                 "ORDER BY sequence", p=pid)


async def attempts(settings: Settings, pid: str) -> list[dict[str, Any]]:
    return await query(settings, "SELECT * FROM webhook_attempts WHERE prediction_id = :p "
                                 "ORDER BY id", p=pid)


async def wait_state(settings: Settings, pid: str, state: str, timeout: float = 30) -> None:
    async def reached() -> bool:
        rows = await deliveries(settings, pid)
        return bool(rows) and all(r["state"] == state for r in rows)
    await wait_until(reached, timeout, f"deliveries of {pid} {state}")


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[EventWriter]:
    async with EventWriter(settings) as writer:
        yield writer


async def test_500_is_retried_with_the_same_id_and_every_attempt_verifies(
        settings: Settings, events: EventWriter, receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        got = await receiver.wait_for(3)
        await wait_state(settings, pid, "delivered")
    secret = await secret_of(settings)
    assert len(got) == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for r in got:
        assert Webhook(secret).verify(r.body, r.headers)["status"] == "succeeded"
        assert r.headers[SEQUENCE_HEADER] == str(TERMINAL_SEQUENCE)
        assert r.headers[EVENT_HEADER] == EventType.SUCCEEDED.value
    log = await attempts(settings, pid)
    assert [a["status"] for a in log] == [500, 500, 200]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert log[0]["error"] == "HTTP 500" and log[2]["response"] == "ok"


async def test_retry_after_is_honoured_and_clamped(settings: Settings, events: EventWriter,
                                                   receiver: Receiver) -> None:
    settings.webhook.max_retry_after = 1.0

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3600"})

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "1"})

    receiver.responders = [busy, unavailable]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await receiver.wait_for(3, timeout=20)  # an unclamped hour would never get here
        await wait_state(settings, pid, "delivered")
    log = await attempts(settings, pid)
    assert [a["status"] for a in log] == [429, 503, 200]
    # Each retry waited at least the (clamped) Retry-After, far more than the 0.2 s schedule.
    for before, after in itertools.pairwise(log):
        assert (after["started_at"] - before["started_at"]).total_seconds() >= 0.95


async def test_410_stops_the_endpoint(settings: Settings, events: EventWriter,
                                      receiver: Receiver) -> None:
    settings.webhook.endpoint_concurrency = 1
    receiver.statuses = [410] * 10
    async with dispatcher_running(settings, housekeeping=False):
        first = await start_prediction(events, receiver.url)
        await finish(events, first)
        await wait_state(settings, first, "failed")
        second = await start_prediction(events, receiver.url)
        await finish(events, second)
        await wait_until(lambda: _any_state(settings, second), what="second delivery ends")
    assert [a["status"] for a in await attempts(settings, first)] == [410]
    assert len(receiver.requests) <= 2


async def _any_state(settings: Settings, pid: str) -> bool:
    rows = await deliveries(settings, pid)
    return bool(rows) and rows[0]["state"] != "pending"


async def test_redirect_is_a_failure_and_never_followed(settings: Settings, events: EventWriter,
                                                        receiver: Receiver) -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": receiver.url})

    receiver.responders = [moved]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await wait_state(settings, pid, "delivered")
    log = await attempts(settings, pid)
    assert [a["status"] for a in log] == [301, 200]  # a followed redirect would read 200 first
    assert "redirects are not followed" in log[0]["error"]
    assert len(receiver.requests) == 2


async def test_receiver_hanging_past_the_timeout(settings: Settings, events: EventWriter,
                                                 receiver: Receiver) -> None:
    settings.webhook.timeout = 1.0

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="too late")

    receiver.responders = [hang]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await wait_state(settings, pid, "delivered")
    log = await attempts(settings, pid)
    assert [a["status"] for a in log] == [None, 200]
    assert "no answer within 1s" in log[0]["error"]
    got = receiver.requests
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]


async def test_receiver_resetting_the_connection(settings: Settings, events: EventWriter,
                                                 receiver: Receiver) -> None:
    async def reset(request: web.Request) -> web.Response:
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        transport.abort()
        raise ConnectionResetError("reset on purpose")

    receiver.responders = [reset]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await wait_state(settings, pid, "delivered")
    log = await attempts(settings, pid)
    assert [a["status"] for a in log] == [None, 200]
    assert log[0]["error"]


async def test_receiver_trickling_a_huge_body(settings: Settings, events: EventWriter,
                                              receiver: Receiver) -> None:
    sent = 0

    async def trickle(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"x" * 4096
        while sent < 1024 * 1024 * 1024:  # a gigabyte, if anyone read it
            await response.write(chunk)
            sent += len(chunk)
            await asyncio.sleep(0.001)
        return response

    receiver.responders = [trickle]
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await wait_state(settings, pid, "delivered")
    (attempt,) = await attempts(settings, pid)
    assert attempt["status"] == 200
    assert len(attempt["response"]) == 4096
    assert sent < 16 * 1024 * 1024  # the dispatcher hung up long before


async def test_one_prediction_goes_out_in_sequence_order_with_progress_throttled(
        settings: Settings, events: EventWriter, receiver: Receiver) -> None:
    async with dispatcher_running(settings, housekeeping=False):
        pid = await start_prediction(events, receiver.url,
                                     filter=["start", "output", "logs", "completed"])
        await events.send(pid, 2, Started(started_at=utcnow()))
        for n in range(3, 40):
            await events.send(pid, n, Output(output=n) if n % 2 else Logs(logs=f"{n}\n"),
                              wait=False)
            if n % 10 == 0:
                await asyncio.sleep(0.3)
        await events.flush()
        await finish(events, pid, output="final")
        await wait_until(lambda: _terminal_arrived(receiver), what="terminal webhook")
        await wait_state_settled(settings, pid)
    bodies = [r.json() for r in receiver.requests]
    sequences = [int(r.headers[SEQUENCE_HEADER]) for r in receiver.requests]
    assert sequences == sorted(set(sequences)), "out of order or repeated"
    assert [b["status"] for b in bodies[:2]] == ["pending", "started"]  # `start` twice
    assert bodies[-1]["status"] == "succeeded" and bodies[-1]["output"] == "final"
    assert len(bodies) < 37 + 3, "output/logs were not throttled"
    rows = await deliveries(settings, pid)
    progress = [r for r in rows if r["event_type"] in (EventType.OUTPUT, EventType.LOGS)]
    for before, after in itertools.pairwise(progress):
        assert (after["scheduled_at"] - before["scheduled_at"]).total_seconds() >= 0.5


async def _terminal_arrived(receiver: Receiver) -> bool:
    return any(r.json()["status"] == "succeeded" for r in receiver.requests)


async def wait_state_settled(settings: Settings, pid: str) -> None:
    async def settled() -> bool:
        return all(r["state"] != "pending" for r in await deliveries(settings, pid))
    await wait_until(settled, what="no pending deliveries")


async def test_black_hole_endpoint_does_not_delay_others(settings: Settings,
                                                         events: EventWriter) -> None:
    settings.webhook.endpoint_concurrency = 4
    settings.webhook.timeout = 20.0
    release = asyncio.Event()

    async def black_hole(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    async with Receiver.running() as healthy, Receiver.running() as dead:
        dead.responders = [black_hole] * 100
        async with dispatcher_running(settings, housekeeping=False):
            stuck = [await start_prediction(events, dead.url) for _ in range(20)]
            for pid in stuck:
                await finish(events, pid)
            await dead.wait_for(4)
            fine = [await start_prediction(events, healthy.url) for _ in range(20)]
            for pid in fine:
                await finish(events, pid)
            await healthy.wait_for(20)
            # Every healthy webhook arrived while the black hole still held its first ones.
            assert len(dead.requests) == 4, "more in flight to one endpoint than its cap"
            assert await query(settings, "SELECT 1 FROM webhook_attempts a JOIN "
                                         "webhook_deliveries d ON d.id = a.delivery_id "
                                         "WHERE d.url = :u", u=dead.url) == []
            release.set()
            for pid in stuck:
                await wait_state(settings, pid, "delivered")


async def test_breaker_opens_after_consecutive_failures(settings: Settings, events: EventWriter,
                                                        receiver: Receiver) -> None:
    settings.webhook.endpoint_concurrency = 1
    settings.webhook.breaker_failures = 3
    settings.webhook.breaker_cooldown = 120.0
    receiver.statuses = [500] * 100
    async with dispatcher_running(settings, housekeeping=False):
        pids = [await start_prediction(events, receiver.url) for _ in range(5)]
        for pid in pids:
            await finish(events, pid)
        await receiver.wait_for(3)

        async def held() -> bool:
            rows = await query(settings, "SELECT count(*) AS n FROM webhook_deliveries "
                                         "WHERE next_attempt_at > now() + interval '60 seconds'")
            return int(rows[0]["n"]) == 5
        await wait_until(held, what="deliveries held back by the open breaker")
    assert len(receiver.requests) == 3


async def test_stale_claim_cannot_record(settings: Settings, events: EventWriter,
                                         receiver: Receiver) -> None:
    async with dispatcher_running(settings, housekeeping=False, deliver=False):
        pid = await start_prediction(events, receiver.url)
        await finish(events, pid)
        await wait_until(lambda: _has_rows(settings, pid), what="outbox row")
    settings.webhook.timeout = 0.1  # lease of 2.2 s
    engine = create_engine(settings.database)
    session = client_session(settings.webhook.allow_nets, per_endpoint=4)
    try:
        stale = OutboxWorker(engine, session, settings.webhook)
        fresh = OutboxWorker(engine, session, settings.webhook)
        (first,) = await stale.claim(10)
        assert await fresh.claim(10) == []  # leased
        (second,) = await _claim_after_lease(fresh)
        assert second.claim != first.claim and second.id == first.id
        ok = Attempt(utcnow(), ok=True, status=200, error=None, response="", latency=0.01)
        await stale.record([Outcome(first, ok, Next(DeliveryState.DELIVERED))])
        (row,) = await deliveries(settings, pid)
        assert row["state"] == "pending" and row["claim_id"] == second.claim
        await fresh.record([Outcome(second, ok, Next(DeliveryState.DELIVERED))])
        (row,) = await deliveries(settings, pid)
        assert row["state"] == "delivered"
        assert len(await attempts(settings, pid)) == 2  # both attempts happened and are logged
    finally:
        await session.close()
        await engine.dispose()


async def _has_rows(settings: Settings, pid: str) -> bool:
    return bool(await deliveries(settings, pid))


async def _claim_after_lease(worker: OutboxWorker) -> list[Any]:
    for _ in range(200):
        claimed = await worker.claim(10)
        if claimed:
            return claimed
        await asyncio.sleep(0.05)
    raise TimeoutError("the lease never ran out")


async def test_loopback_outside_the_allow_list_is_refused(settings: Settings,
                                                          events: EventWriter) -> None:
    settings.webhook.retry_schedule = [0]
    async with Receiver.running("127.0.0.2") as inside:
        async with dispatcher_running(settings, housekeeping=False):
            pid = await start_prediction(events, inside.url)
            await finish(events, pid)
            await wait_state(settings, pid, "failed")
        assert inside.requests == []
        (attempt,) = await attempts(settings, pid)
        assert "refused" in attempt["error"]
        # The same receiver, once an operator allows it, is reached (the test can fail).
        settings.webhook.allow_nets = [ip_network("127.0.0.2/32")]
        async with dispatcher_running(settings, housekeeping=False):
            pid = await start_prediction(events, inside.url)
            await finish(events, pid)
            await wait_state(settings, pid, "delivered")
        assert len(inside.requests) == 1


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback_is_refused(settings: Settings, events: EventWriter) -> None:
    settings.webhook.retry_schedule = [0]
    async with Receiver.running("::1") as inside:
        async with dispatcher_running(settings, housekeeping=False):
            pid = await start_prediction(events, inside.url)
            await finish(events, pid)
            await wait_state(settings, pid, "failed")
        assert inside.requests == []

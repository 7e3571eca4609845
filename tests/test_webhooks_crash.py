"""A dispatcher SIGKILLed while webhooks are in flight: nothing is lost, duplicates share ids."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import defaultdict

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from inferhook.db import create_engine
from inferhook.settings import Settings
from schemas.events import TERMINAL_SEQUENCE, Completed, Created, EventType, Started, utcnow
from store.accounts import webhook_secret
from tests.support import EventWriter, Receiver, query, start_dispatcher_process, wait_until

pytestmark = pytest.mark.usefixtures("clean_db")


async def test_dispatcher_killed_mid_delivery(settings: Settings, receiver: Receiver) -> None:
    settings.webhook.timeout = 2.0  # lease of 6 s after the kill
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late but fine")

    receiver.responders = [slow] * 10
    pids = [str(uuid.uuid4()) for _ in range(30)]
    async with EventWriter(settings) as events:
        for pid in pids:
            await events.send(pid, 0, Created(
                owner="alice", model="inferhook/digits", input={}, webhook=receiver.url,
                webhook_events_filter=["start", "completed"], created_at=utcnow()), wait=False)
            await events.send(pid, 2, Started(started_at=utcnow()), wait=False)
            await events.send_typed(pid, TERMINAL_SEQUENCE, EventType.SUCCEEDED,
                                    Completed(completed_at=utcnow(), output=pid), wait=False)
        await events.flush()
    process = start_dispatcher_process(settings)
    try:
        await receiver.wait_for(10, timeout=60)  # ten attempts held open by the receiver
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        release.set()
        process = start_dispatcher_process(settings)
        await wait_until(lambda: _all_delivered(settings, 90), timeout=90,
                         what="every webhook delivered after the restart")
    finally:
        release.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)

    engine = create_engine(settings.database)
    try:
        secret = await webhook_secret(engine, "alice")
    finally:
        await engine.dispose()
    ids_by_state: dict[tuple[str, str], set[str]] = defaultdict(set)
    for request in receiver.requests:
        body = Webhook(secret).verify(request.body, request.headers)
        ids_by_state[(body["id"], body["status"])].add(request.headers["webhook-id"])
    statuses = ("pending", "started", "succeeded")  # `start` at create time and at the start
    assert set(ids_by_state) == {(p, s) for p in pids for s in statuses}
    assert all(len(ids) == 1 for ids in ids_by_state.values()), "a duplicate got a new id"
    assert len(receiver.requests) > 90, "nothing was in flight at the kill"
    # Each prediction's webhooks reached the receiver in sequence order.
    order: dict[str, list[str]] = defaultdict(list)
    for request in receiver.requests:
        body = request.json()
        if not order[body["id"]] or order[body["id"]][-1] != body["status"]:
            order[body["id"]].append(body["status"])
    assert all(seen == list(statuses) for seen in order.values()), order


async def _all_delivered(settings: Settings, count: int) -> bool:
    rows = await query(settings, "SELECT count(*) AS n FROM webhook_deliveries "
                                 "WHERE state = 'delivered'")
    return int(rows[0]["n"]) == count

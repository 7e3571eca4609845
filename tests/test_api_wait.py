"""`Prefer: wait`: create and GET hold the connection until the prediction is terminal."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sqlalchemy import text

from inferhook.db import create_engine
from ingest.state import CHANGES
from tests.support import Stack, example_input

DIGITS = "inferhook/digits"


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


def waiters(stack: Stack) -> int:
    assert stack.app is not None
    return stack.app[CHANGES].count()


async def until(condition: Any, timeout: float = 20.0) -> None:
    """Poll a cheap in-process condition until it holds."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition still false after {timeout}s")


async def test_create_with_prefer_wait_answers_when_done(stack: Stack) -> None:
    response = await stack.create(digits(stack), headers={"Prefer": "wait"})
    assert response.status == 201
    body = await response.json()
    assert body["status"] == "succeeded"
    assert body["output"]["digit"] == 7
    assert response.headers["Preference-Applied"] == "wait=60"


async def test_get_with_prefer_wait_answers_when_done(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    async with stack.http.get(created["urls"]["get"],
                              headers={**stack.auth(), "Prefer": "wait=30"}) as response:
        body = await response.json()
        assert response.headers["Preference-Applied"] == "wait=30"
    assert body["status"] == "succeeded"


async def test_wait_ends_with_the_current_state_when_time_is_up(idle_stack: Stack) -> None:
    stack = idle_stack
    response = await stack.create(digits(stack), headers={"Prefer": "wait=1"})
    assert response.status == 201
    assert (await response.json())["status"] == "pending"
    assert response.headers["Preference-Applied"] == "wait=1"
    assert waiters(stack) == 0


async def test_wait_is_clamped_and_bad_preferences_are_ignored(idle_stack: Stack) -> None:
    stack = idle_stack
    created = await (await stack.create(digits(stack))).json()
    for prefer, applied in (("wait=0", "wait=1"), ("respond-async, wait=1", "wait=1"),
                            ("wait=banana", None), ("handling=lenient", None)):
        async with stack.http.get(created["urls"]["get"],
                                  headers={**stack.auth(), "Prefer": prefer}) as response:
            assert response.status == 200, prefer
            assert response.headers.get("Preference-Applied") == applied, prefer


async def test_many_waiters_all_wake_on_one_change(idle_stack: Stack) -> None:
    stack = idle_stack
    created = await (await stack.create(digits(stack))).json()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def wait_for_it() -> dict[str, Any]:
            async with http.get(created["urls"]["get"],
                                headers={**stack.auth(), "Prefer": "wait=60"}) as response:
                body: dict[str, Any] = await response.json()
                return body

        held = [asyncio.create_task(wait_for_it()) for _ in range(300)]
        await until(lambda: waiters(stack) == 300)
        async with stack.http.post(created["urls"]["cancel"], headers=stack.auth()) as canceled:
            assert (await canceled.json())["status"] == "canceled"
        bodies = await asyncio.gather(*held)
    assert {b["status"] for b in bodies} == {"canceled"}
    await until(lambda: waiters(stack) == 0)


async def test_a_client_that_hangs_up_frees_its_waiter(idle_stack: Stack) -> None:
    stack = idle_stack
    created = await (await stack.create(digits(stack))).json()
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(http.get(created["urls"]["get"],
                                               headers={**stack.auth(), "Prefer": "wait=60"}))
        await until(lambda: waiters(stack) == 1)
        request.cancel()
    await until(lambda: waiters(stack) == 0)
    fetched = await stack.get(created["id"])
    assert (await fetched.json())["status"] == "pending"


async def test_waiters_survive_a_lost_listen_connection(idle_stack: Stack) -> None:
    stack = idle_stack
    assert stack.app is not None
    feed = stack.app[CHANGES]
    await asyncio.wait_for(feed.connected.wait(), 10)
    created = await (await stack.create(digits(stack))).json()
    held = asyncio.create_task(stack.http.get(created["urls"]["get"],
                                              headers={**stack.auth(), "Prefer": "wait=60"}))
    await until(lambda: waiters(stack) == 1)
    listening = feed.backend_pid
    engine = create_engine(stack.settings.database)
    try:
        async with engine.begin() as conn:
            killed = (await conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                                         {"pid": listening})).scalar_one()
    finally:
        await engine.dispose()
    assert killed
    await until(lambda: feed.backend_pid not in (None, listening))
    async with stack.http.post(created["urls"]["cancel"], headers=stack.auth()) as canceled:
        assert canceled.status == 200
    async with await held as response:
        assert (await response.json())["status"] == "canceled"

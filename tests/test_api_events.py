"""A prediction's history: the events list and the server-sent-events stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from inferhook.settings import ApiSettings, Settings
from tests.support import Stack, example_input

DIGITS = "inferhook/digits"
TERMINAL = {"succeeded", "failed", "canceled"}


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


async def read_stream(stack: Stack, url: str, **headers: str) -> list[dict[str, Any]]:
    """Every SSE message until the server closes the stream (comments as {'comment': …})."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with stack.http.get(url, headers={**stack.auth(), **headers}) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if current:
                    messages.append(current)
                current = {}
            elif line.startswith(":"):
                messages.append({"comment": line[1:].strip()})
            else:
                field, _, value = line.partition(": ")
                current[field] = orjson.loads(value) if field == "data" else value
    return messages


async def test_events_list_the_whole_history_with_sequences(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    await stack.wait_terminal(created["id"])
    async with stack.http.get(created["urls"]["events"], headers=stack.auth()) as response:
        events = (await response.json())["results"]
    types = [e["type"].rsplit(".", 1)[-1] for e in events]
    assert types[0] == "created" and "started" in types and types[-1] == "succeeded"
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(set(sequences)) and sequences[0] == 0
    assert events[-1]["data"]["output"]["digit"] == 7

    after = events[1]["sequence"]
    async with stack.http.get(f"{created['urls']['events']}?after={after}",
                              headers=stack.auth()) as response:
        later = (await response.json())["results"]
    assert later == events[2:]


async def test_stream_sends_every_event_then_closes(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    messages = [m for m in await read_stream(stack, created["urls"]["stream"]) if "comment" not in m]
    assert messages[-1]["event"] == "succeeded"
    assert messages[0]["event"] == "created"
    assert [int(m["id"]) for m in messages] == [m["data"]["sequence"] for m in messages]
    async with stack.http.get(created["urls"]["events"], headers=stack.auth()) as response:
        assert [m["data"] for m in messages] == (await response.json())["results"]


async def test_stream_resumes_after_last_event_id(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    first = [m for m in await read_stream(stack, created["urls"]["stream"]) if "id" in m]
    resumed = [m for m in await read_stream(stack, created["urls"]["stream"],
                                            **{"Last-Event-ID": first[1]["id"]}) if "id" in m]
    assert resumed == first[2:]
    nothing = await read_stream(stack, created["urls"]["stream"], **{"Last-Event-ID": first[-1]["id"]})
    assert nothing == []


@pytest.fixture
def quick_keepalive(settings: Settings) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(stream_keepalive_seconds=0.2)})


async def test_idle_stream_sends_keepalives_and_closes_on_cancel(quick_keepalive: Settings,
                                                               clean_db: None) -> None:
    async with Stack.running(quick_keepalive, executor=False) as stack:
        created = await (await stack.create(digits(stack))).json()
        seen: list[str] = []
        async with stack.http.get(created["urls"]["stream"], headers=stack.auth()) as response:
            async for raw in response.content:
                seen.append(raw.decode().rstrip("\n"))
                if seen.count(": keep-alive") == 2 and len(seen) < 1000:
                    async with stack.http.post(created["urls"]["cancel"], headers=stack.auth()):
                        pass
                    seen.append("<canceled>")
        assert "event: canceled" in seen
        assert seen.index("event: canceled") > seen.index("<canceled>")


async def test_bad_resume_points_are_400(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    for url, headers in ((created["urls"]["stream"], {"Last-Event-ID": "abc"}),
                         (created["urls"]["stream"] + "?after=x", {}),
                         (created["urls"]["events"] + "?after=-2", {})):
        async with stack.http.get(url, headers={**stack.auth(), **headers}) as response:
            assert response.status == 400, url

"""Bad requests get a clear 4xx in the one problem shape, and store nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import text

from inferhook.db import create_engine
from tests.support import Stack, example_input


async def prediction_count(stack: Stack) -> int:
    engine = create_engine(stack.settings.database)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM predictions"))).scalar_one())
    finally:
        await engine.dispose()


def digits_input(stack: Stack) -> dict[str, Any]:
    return example_input(stack.settings, "inferhook/digits")


@pytest.mark.parametrize(("body", "status"), [
    ({"model": "nobody/nothing", "input": {}}, 404),
    ({"model": "inferhook/digits", "input": {"image": 5}}, 422),
    ({"model": "inferhook/digits", "input": {}}, 422),
    ({"model": "inferhook/digits", "input": "not an object"}, 422),
    ({"model": "inferhook/digits"}, 422),
    ({"model": "Not A Model Name", "input": {}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "unknown_field": 1}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "ftp://example.com/hook"}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "http://127.0.0.2:9/hook"}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook_events_filter": ["everything"]}, 422),
    ([1, 2, 3], 422),
    ("just a string", 422),
])
async def test_invalid_body_is_refused_and_stores_nothing(
        stack: Stack, body: Any, status: int) -> None:
    response = await stack.create(body)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["status"] == status
    assert problem["detail"]
    if status == 422:
        assert problem["errors"], "422 must list its problems"
        assert all(item["loc"] and item["msg"] for item in problem["errors"])
    assert await prediction_count(stack) == 0


async def test_every_schema_problem_is_listed_with_its_path(stack: Stack) -> None:
    response = await stack.create({"model": "inferhook/digits",
                                   "input": {"image": 3, "extra": True}})
    assert response.status == 422
    locs = [item["loc"] for item in (await response.json())["errors"]]
    assert ["body", "input", "image"] in locs
    assert any(loc[:2] == ["body", "input"] and len(loc) == 2 for loc in locs)


async def test_malformed_json_is_400(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/predictions", data=b'{"model": ',
                               headers={**stack.auth(), "Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert "JSON" in (await r.json())["detail"]
    assert await prediction_count(stack) == 0


async def test_wrong_content_type_is_415(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/predictions", data=b"model=x",
                               headers={**stack.auth(),
                                        "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    assert await prediction_count(stack) == 0


async def test_body_over_limit_is_413(stack: Stack) -> None:
    big = b'{"model": "inferhook/digits", "input": {"image": "' + b"A" * (
        stack.settings.max_body_bytes + 10) + b'"}}'
    async with stack.http.post(f"{stack.base_url}/v1/predictions", data=big,
                               headers={**stack.auth(), "Content-Type": "application/json"}) as r:
        assert r.status == 413
    assert await prediction_count(stack) == 0


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", "Basic abc", "bearer  "])
async def test_missing_or_bad_key_is_401(stack: Stack, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    body = {"model": "inferhook/digits", "input": digits_input(stack)}
    async with stack.http.post(f"{stack.base_url}/v1/predictions", json=body,
                               headers=headers) as r:
        assert r.status == 401
        assert r.content_type == "application/problem+json"
    assert await prediction_count(stack) == 0


async def test_unknown_prediction_is_404(stack: Stack) -> None:
    response = await stack.get("01234567-89ab-7def-8123-456789abcdef")
    assert response.status == 404
    assert (await response.json())["type"].endswith("not-found")


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE_BODIES: list[tuple[Any, int]] = [
    ({"model": None, "input": {"image": "data:image/png;base64,AA"}}, 422),
    ({"model": "inferhook/digits", "input": None}, 422),
    ({"model": "inferhook/digits", "input": {"image": None}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": None, "webhook_events_filter": None}, 422),
    ({"model": 7, "input": {"image": "data:image/png;base64,AA"}}, 422),
    ({"model": ["inferhook/digits"], "input": {"image": "data:image/png;base64,AA"}}, 422),
    ({"model": "inferhook/digits", "input": [1, 2]}, 422),
    ({"model": "inferhook/digits", "input": {"image": True}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": 12}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook_events_filter": "completed"}, 422),
    ({"model": "inferhook/digits" + "x" * 100_000, "input": {}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "https://example.com/" + "a" * 100_000}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook_events_filter": ["completed"] * 100_000}, 422),
    ({"model": "inferhook/digits", "input": {"image": ["x"] * 100_000}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "x" * 1_000_000}}, 422),
    ({"model": "inferhook/digits", "input": nested(40)}, 422),
    ({"model": "inferhook/digits", "input": nested(500)}, 400),
    ({"model": "inferhook/dígits", "input": {"image": "data:image/png;base64,AA"}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "🖼️ data:image/png;base64,AA"}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA\u0000"}}, 422),
    ({"model": "inferhook/digits", "input": {"image\u0000": "data:image/png;base64,AA"}}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "http://exämple.invalid/hook"}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "javascript:alert(1)"}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "webhook": "http://user:pw@example.com/hook"}, 422),
    ({"model": "inferhook/digits", "input": {"image": "data:image/png;base64,AA"},
      "extra": {"deep": [1, 2, 3]}}, 422),
    ({}, 422),
    (42, 422),
    (True, 422),
]


async def test_hostile_bodies_are_refused_and_store_nothing(stack: Stack) -> None:
    # One stack for every case (starting one per case would dominate the suite's time).
    for number, (body, status) in enumerate(HOSTILE_BODIES):
        response = await stack.create(body)
        text = await response.text()
        assert response.status == status, (number, text[:500])
        assert response.content_type == "application/problem+json", number
        problem = await response.json()
        assert problem["status"] == status and problem["title"] and problem["detail"], number
        assert len(text) < 200_000, f"case {number}: the problem must not echo huge input back"
    assert await prediction_count(stack) == 0


MALFORMED = [
    b"", b"   ", b"{", b"[", b'{"model": "inferhook/digits",}', b"{'model': 1}", b"NaN",
    b'{"model": "inferhook/digits", "input": {"image": "\\ud800"}}', b"\xff\xfe{}",
    b'{"a": 1e999}', b"[" * 5000 + b"]" * 5000, b'{"model": "x"} trailing',
]


async def test_malformed_bodies_are_400(stack: Stack) -> None:
    for raw in MALFORMED:
        async with stack.http.post(f"{stack.base_url}/v1/predictions", data=raw,
                                   headers={**stack.auth(), "Content-Type": "application/json"}) as r:
            assert r.status == 400, raw[:50]
            assert r.content_type == "application/problem+json"
            assert (await r.json())["detail"]
    assert await prediction_count(stack) == 0


HEADER_ABUSE: list[tuple[dict[str, str], int]] = [
    ({"Cancel-After": "forever"}, 400),
    ({"Cancel-After": "1" * 4000}, 400),
    ({"Idempotency-Key": "k" * 300}, 400),
    ({"Idempotency-Key": ""}, 400),
    ({"Content-Type": "application/json; charset=utf-16"}, 201),
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Type": "application/jsonx"}, 415),
    ({"Authorization": "Bearer " + "k" * 4000}, 401),
    ({"Authorization": "Bearer ih_\u00e9"}, 401),
    ({"Prefer": "wait=99999999999999999999"}, 201),
    ({"Prefer": ",,,;;;=="}, 201),
    ({"Result-TTL": "9" * 400}, 201),
    ({"X-Anything": "v" * 7000}, 201),
]


async def test_header_abuse_gets_a_clear_answer(stack: Stack) -> None:
    body = orjson.dumps({"model": "inferhook/digits", "input": digits_input(stack)})
    created = 0
    for headers, status in HEADER_ABUSE:
        merged = {**stack.auth(), "Content-Type": "application/json", **headers}
        async with stack.http.post(f"{stack.base_url}/v1/predictions", data=body,
                                   headers=merged) as r:
            assert r.status == status, (list(headers), await r.text())
            if status >= 400:
                assert r.content_type == "application/problem+json"
                assert (await r.json())["detail"]
        created += status == 201
        assert await prediction_count(stack) == created, list(headers)

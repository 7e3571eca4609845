"""Creating predictions: both routes, the fields of the answer, and the create headers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import uuid_utils

from tests.support import Stack, example_input

DIGITS = "inferhook/digits"


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_create_answers_201_with_the_whole_prediction(stack: Stack) -> None:
    response = await stack.create(digits(stack))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert uuid_utils.UUID(body["id"]).version == 7
    assert body["model"] == DIGITS
    assert body["status"] == "pending"
    assert body["input"] == digits(stack)["input"]
    assert body["output"] is None and body["error"] is None
    assert body["logs"] == ""
    assert body["started_at"] is None and body["completed_at"] is None
    assert body["expires_at"] is None
    assert body["metrics"] == {}
    root = f"{stack.base_url}/v1/predictions/{body['id']}"
    assert body["urls"] == {"get": root, "cancel": f"{root}/cancel", "events": f"{root}/events",
                            "stream": f"{root}/stream"}
    assert response.headers["Location"] == root


async def test_model_route_creates_the_same_prediction(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/models/inferhook/digits/predictions",
                               json={"input": example_input(stack.settings, DIGITS)},
                               headers=stack.auth()) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    assert body["model"] == DIGITS
    done = await stack.wait_terminal(body["id"])
    assert done["status"] == "succeeded"
    assert done["output"]["digit"] == 7


async def test_model_route_refuses_unknown_model_and_model_field(stack: Stack) -> None:
    url = f"{stack.base_url}/v1/models/nobody/nothing/predictions"
    async with stack.http.post(url, json={"input": {}}, headers=stack.auth()) as response:
        assert response.status == 404
    url = f"{stack.base_url}/v1/models/inferhook/digits/predictions"
    async with stack.http.post(url, json={**digits(stack)}, headers=stack.auth()) as response:
        assert response.status == 422
        assert ["body", "model"] in [item["loc"] for item in (await response.json())["errors"]]


async def test_succeeded_prediction_shows_metrics_and_expiry(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    done = await stack.wait_terminal(created["id"])
    assert done["status"] == "succeeded"
    for name in ("queue_time", "predict_time", "total_time"):
        assert done["metrics"][name] >= 0, done["metrics"]
    assert at(done["started_at"]) >= at(done["created_at"])
    assert at(done["completed_at"]) >= at(done["started_at"])
    assert at(done["expires_at"]) - at(done["completed_at"]) == timedelta(hours=1)


async def test_result_ttl_header_sets_expiry(stack: Stack) -> None:
    created = await (await stack.create(digits(stack), headers={"Result-TTL": "90"})).json()
    done = await stack.wait_terminal(created["id"])
    assert at(done["expires_at"]) - at(done["completed_at"]) == timedelta(seconds=90)


async def test_invalid_result_ttl_falls_back_to_default(stack: Stack) -> None:
    for value in ("-5", "0", "soon", ""):
        response = await stack.create(digits(stack), headers={"Result-TTL": value})
        assert response.status == 201, value
        done = await stack.wait_terminal((await response.json())["id"])
        assert at(done["expires_at"]) - at(done["completed_at"]) == timedelta(hours=1), value


async def test_cancel_after_sets_the_deadline(stack: Stack) -> None:
    for header, seconds in (("30s", 30), ("5m", 300), ("1h30m", 5400), ("90", 90)):
        response = await stack.create(digits(stack), headers={"Cancel-After": header})
        assert response.status == 201, header
        body = await response.json()
        assert at(body["deadline"]) - at(body["created_at"]) == timedelta(seconds=seconds), header


async def test_bad_cancel_after_is_400_and_creates_nothing(stack: Stack) -> None:
    for header in ("soon", "0s", "-1m", "8d", "1h30", "99999999h"):
        response = await stack.create(digits(stack), headers={"Cancel-After": header})
        assert response.status == 400, header
        problem = await response.json()
        assert problem["errors"][0]["loc"] == ["header", "Cancel-After"]
    async with stack.http.get(f"{stack.base_url}/v1/predictions", headers=stack.auth()) as listed:
        assert (await listed.json())["results"] == []

"""Reading predictions: GET by id and the paginated, filtered list."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.support import Stack, example_input

DIGITS = "inferhook/digits"


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


async def listing(stack: Stack, query: str = "", *, key: str | None = None) -> tuple[int, Any]:
    async with stack.http.get(f"{stack.base_url}/v1/predictions{query}",
                              headers=stack.auth(key)) as response:
        return response.status, await response.json()


async def make(stack: Stack, count: int) -> list[dict[str, Any]]:
    made = []
    for _ in range(count):
        response = await stack.create(digits(stack))
        assert response.status == 201
        made.append(await response.json())
    return made


async def test_list_is_newest_first_and_pages_through_everything(idle_stack: Stack) -> None:
    stack = idle_stack
    made = await make(stack, 7)
    seen: list[str] = []
    status, page = await listing(stack, "?limit=3")
    while True:
        assert status == 200
        assert len(page["results"]) <= 3
        seen += [p["id"] for p in page["results"]]
        if page["next"] is None:
            break
        assert page["next"].startswith(f"{stack.base_url}/v1/predictions?")
        async with stack.http.get(page["next"], headers=stack.auth()) as response:
            status, page = response.status, await response.json()
    assert seen == [p["id"] for p in reversed(made)]


async def test_list_filters(stack: Stack) -> None:
    done = (await make(stack, 2))
    for prediction in done:
        await stack.wait_terminal(prediction["id"])
    async with stack.http.post(f"{stack.base_url}/v1/predictions", headers=stack.auth(),
                               json={"model": "inferhook/spin", "input": {"milliseconds": 1}}) as r:
        other_model = await r.json()
    await stack.wait_terminal(other_model["id"])

    _, page = await listing(stack, f"?model={quote(DIGITS, safe='')}")
    assert {p["id"] for p in page["results"]} == {p["id"] for p in done}
    _, page = await listing(stack, "?status=succeeded&limit=100")
    assert len(page["results"]) == 3
    _, page = await listing(stack, "?status=pending")
    assert page["results"] == []

    middle = done[1]["created_at"]
    _, page = await listing(stack, f"?created_after={quote(middle)}")
    assert [p["id"] for p in page["results"]] == [other_model["id"]]
    _, page = await listing(stack, f"?created_before={quote(middle)}")
    assert [p["id"] for p in page["results"]] == [done[0]["id"]]


async def test_list_shows_only_my_predictions(idle_stack: Stack) -> None:
    stack = idle_stack
    await make(stack, 2)
    bob = await stack.new_key("bob")
    status, page = await listing(stack, key=bob)
    assert status == 200
    assert page == {"results": [], "next": None}


async def test_bad_list_parameters_are_400(idle_stack: Stack) -> None:
    for query in ("?limit=0", "?limit=101", "?limit=x", "?status=done", "?model=Nope",
                  "?created_after=yesterday", "?cursor=garbage", "?cursor=" + "A" * 300,
                  "?surprise=1", "?limit=1&limit=2"):
        status, problem = await listing(idle_stack, query)
        assert status == 400, query
        assert problem["errors"] and problem["errors"][0]["loc"][0] == "query", query


async def test_other_owners_prediction_is_404_everywhere(idle_stack: Stack) -> None:
    stack = idle_stack
    (mine,) = await make(stack, 1)
    bob = await stack.new_key("bob")
    for suffix, method in (("", "GET"), ("/events", "GET"), ("/stream", "GET"), ("/cancel", "POST")):
        async with stack.http.request(method, mine["urls"]["get"] + suffix,
                                      headers=stack.auth(bob)) as response:
            assert response.status == 404, suffix
    assert (await (await stack.get(mine["id"])).json())["status"] == "pending"

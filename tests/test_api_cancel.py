"""Cancel: from pending (never runs), from started (the executor stops), idempotent."""

from __future__ import annotations

from typing import Any

from tests.support import Stack, example_input, free_port

DIGITS = "inferhook/digits"


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


async def cancel(stack: Stack, prediction: dict[str, Any], **headers: str) -> tuple[int, Any]:
    async with stack.http.post(prediction["urls"]["cancel"],
                               headers={**stack.auth(), **headers}) as response:
        return response.status, await response.json()


async def test_cancel_pending_prediction(idle_stack: Stack) -> None:
    stack = idle_stack
    created = await (await stack.create(digits(stack))).json()
    status, body = await cancel(stack, created)
    assert status == 200
    assert body["status"] == "canceled"
    assert body["error"]["reason"] == "canceled_by_user"
    assert body["started_at"] is None
    assert body["completed_at"] is not None

    again_status, again = await cancel(stack, created)
    assert again_status == 200
    assert again == body


async def test_canceled_pending_prediction_never_runs(idle_stack: Stack) -> None:
    stack = idle_stack
    created = await (await stack.create(digits(stack))).json()
    await cancel(stack, created)
    # Start an executor now: it finds the request and the cancel, and must skip it.
    elsewhere = stack.settings.model_copy(update={"port": free_port()})
    async with Stack.running(elsewhere, dispatcher=False) as with_executor:
        other = await (await with_executor.create(digits(stack))).json()
        await stack.wait_terminal(other["id"])  # the executor has caught up
        async with stack.http.get(created["urls"]["events"], headers=stack.auth()) as response:
            types = [e["type"] for e in (await response.json())["results"]]
    assert "inferhook.prediction.started" not in types
    final = await (await stack.get(created["id"])).json()
    assert final["status"] == "canceled"
    assert final["output"] is None


async def test_cancel_terminal_prediction_returns_it_unchanged(stack: Stack) -> None:
    created = await (await stack.create(digits(stack))).json()
    done = await stack.wait_terminal(created["id"])
    status, body = await cancel(stack, created)
    assert status == 200
    assert body == done


async def test_cancel_running_prediction_stops_it(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/predictions", headers=stack.auth(),
                               json={"model": "inferhook/spin",
                                     "input": {"milliseconds": 20000}}) as response:
        created = await response.json()
    async with stack.http.get(created["urls"]["stream"], headers=stack.auth()) as stream:
        async for line in stream.content:
            if line.startswith(b"event: started"):
                break
    status, body = await cancel(stack, created, Prefer="wait=15")
    assert status == 200
    assert body["status"] == "canceled", body
    assert body["error"]["reason"] == "canceled_by_user"
    assert body["started_at"] is not None
    assert body["output"] is None


async def test_cancel_unknown_prediction_is_404(stack: Stack) -> None:
    async with stack.http.post(f"{stack.base_url}/v1/predictions/nope/cancel",
                               headers=stack.auth()) as response:
        assert response.status == 404

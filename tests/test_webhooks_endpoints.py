"""Account webhook endpoints through the real stack: CRUD, secrets, test events, fan-out
with filters, payloads, and owners kept apart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from dispatcher.stats import refresh_outbox_gauges
from inferhook.db import create_engine
from inferhook.metrics import ENDPOINT_ATTEMPTS, ENDPOINT_PENDING, ENDPOINT_STATE
from tests.support import Receiver, Stack, example_input, wait_until

ROOT = "/v1/webhooks/endpoints"


async def call(stack: Stack, method: str, path: str, body: Any = None,
               key: str | None = None) -> tuple[int, Any]:
    async with stack.http.request(method, f"{stack.base_url}{path}", json=body,
                                  headers=stack.auth(key)) as response:
        text = await response.text()
        return response.status, (await response.json(content_type=None)) if text else None


async def make_endpoint(stack: Stack, url: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    status, endpoint = await call(stack, "POST", ROOT, {"url": url, **fields}, key)
    assert status == 201, endpoint
    assert endpoint["secret"].startswith("whsec_")
    return dict(endpoint)


def verified(received: Any, secret: str) -> Any:
    """The body of a webhook, verified with `secret` by the standardwebhooks library."""
    return Webhook(secret).verify(received.body, received.headers)


async def test_crud_and_owners(idle_stack: Stack, receiver: Receiver) -> None:
    stack = idle_stack
    created = await make_endpoint(stack, receiver.url, description="main",
                                  event_types=["inferhook.prediction.succeeded"],
                                  models=["inferhook/digits"], rate_limit=5, ordered=True,
                                  payload="thin")
    endpoint_id = created["id"]
    assert created["disabled"] is False and created["ordered"] is True
    status, one = await call(stack, "GET", f"{ROOT}/{endpoint_id}")
    assert status == 200 and "secret" not in one
    assert {k: one[k] for k in ("url", "event_types", "models", "rate_limit", "payload")} == {
        "url": receiver.url, "event_types": ["inferhook.prediction.succeeded"],
        "models": ["inferhook/digits"], "rate_limit": 5, "payload": "thin"}

    status, changed = await call(stack, "PATCH", f"{ROOT}/{endpoint_id}",
                                 {"rate_limit": None, "event_types": [], "disabled": True})
    assert status == 200
    assert (changed["rate_limit"], changed["event_types"], changed["disabled"]) == (None, [], True)
    assert changed["disabled_reason"] == "disabled by its owner"
    status, changed = await call(stack, "PATCH", f"{ROOT}/{endpoint_id}", {"disabled": False})
    assert status == 200 and changed["disabled"] is False and changed["description"] == "main"

    second = await make_endpoint(stack, receiver.url)
    status, page = await call(stack, "GET", f"{ROOT}?limit=1")
    assert status == 200 and len(page["results"]) == 1 and page["next"]
    async with stack.http.get(page["next"], headers=stack.auth()) as response:
        rest = await response.json()
    assert {e["id"] for e in page["results"] + rest["results"]} == {endpoint_id, second["id"]}
    assert rest["next"] is None

    bob = await stack.new_key("bob")
    for method, path, body in (("GET", f"{ROOT}/{endpoint_id}", None),
                               ("PATCH", f"{ROOT}/{endpoint_id}", {"disabled": True}),
                               ("DELETE", f"{ROOT}/{endpoint_id}", None),
                               ("POST", f"{ROOT}/{endpoint_id}/test", None),
                               ("POST", f"{ROOT}/{endpoint_id}/secret/rotate", None),
                               ("GET", f"{ROOT}/{endpoint_id}/deliveries", None),
                               ("POST", f"{ROOT}/{endpoint_id}/recover",
                                {"since": "2020-01-01T00:00:00Z"})):
        status, problem = await call(stack, method, path, body, key=bob)
        assert status == 404 and problem["status"] == 404, (method, path)
    status, bobs = await call(stack, "GET", ROOT, key=bob)
    assert status == 200 and bobs["results"] == []

    status, deleted = await call(stack, "DELETE", f"{ROOT}/{second['id']}")
    assert status == 200 and deleted == {"id": second["id"], "deleted": True}
    status, _ = await call(stack, "GET", f"{ROOT}/{second['id']}")
    assert status == 404


@pytest.mark.parametrize(("body", "where"), [
    ({"url": "http://10.0.0.1/hook"}, ["body", "url"]),
    ({"url": "ftp://example.com/x"}, ["body", "url"]),
    ({"url": "http://127.0.0.1:9/hook", "event_types": ["nope"]}, ["body", "event_types", 0]),
    ({"url": "http://127.0.0.1:9/hook", "models": ["not a model"]}, ["body", "models", 0]),
    ({"url": "http://127.0.0.1:9/hook", "payload": "medium"}, ["body", "payload"]),
    ({"url": "http://127.0.0.1:9/hook", "rate_limit": 0}, ["body", "rate_limit"]),
    ({"url": "http://127.0.0.1:9/hook", "colour": "red"}, ["body", "colour"]),
])
async def test_bad_endpoints_are_422(idle_stack: Stack, body: dict[str, Any],
                                     where: list[Any]) -> None:
    status, problem = await call(idle_stack, "POST", ROOT, body)
    assert status == 422, problem
    assert problem["type"].endswith("/validation")
    assert where in [e["loc"] for e in problem["errors"]]
    status, page = await call(idle_stack, "GET", ROOT)
    assert page["results"] == []


async def test_test_event_and_rotation(idle_stack: Stack, receiver: Receiver) -> None:
    stack = idle_stack
    endpoint = await make_endpoint(stack, receiver.url)
    status, queued = await call(stack, "POST", f"{ROOT}/{endpoint['id']}/test")
    assert status == 202 and queued["state"] == "pending"
    (first,) = await receiver.wait_for(1)
    body = verified(first, endpoint["secret"])
    assert body["type"] == "webhook.test" and body["endpoint_id"] == endpoint["id"]
    assert first.headers["webhook-id"] == queued["webhook_id"]

    status, keys = await call(stack, "POST", f"{ROOT}/{endpoint['id']}/secret/rotate")
    assert status == 200 and keys["previous_key"] == endpoint["secret"]
    assert keys["key"] != endpoint["secret"]
    await call(stack, "POST", f"{ROOT}/{endpoint['id']}/test")
    second = (await receiver.wait_for(2))[1]
    verified(second, keys["key"])
    verified(second, endpoint["secret"])  # the old secret signs beside the new one
    status, shown = await call(stack, "GET", f"{ROOT}/{endpoint['id']}/secret")
    assert shown == keys

    async def both_listed() -> bool:
        _, page = await call(stack, "GET", f"{ROOT}/{endpoint['id']}/deliveries?status=delivered")
        return len(page["results"]) == 2
    await wait_until(both_listed, what="two delivered test events listed")
    _, page = await call(stack, "GET", f"{ROOT}/{endpoint['id']}/deliveries")
    newest = page["results"][0]
    assert newest["endpoint_id"] == endpoint["id"] and newest["event_type"] == "webhook.test"
    assert [a["status_code"] for a in newest["attempt_log"]] == [200]

    # per-endpoint metrics: attempts by outcome (counted in this process's dispatcher), state
    assert ENDPOINT_ATTEMPTS.labels(endpoint["id"], "success")._value.get() == 2
    await call(stack, "PATCH", f"{ROOT}/{endpoint['id']}", {"disabled": True})
    engine = create_engine(stack.settings.database)
    try:
        await refresh_outbox_gauges(engine)
    finally:
        await engine.dispose()
    assert ENDPOINT_STATE.labels(endpoint["id"])._value.get() == 2
    assert ENDPOINT_PENDING.labels(endpoint["id"])._value.get() == 0


async def test_fanout_follows_each_endpoints_filters(stack: Stack) -> None:
    async with Receiver.running() as a, Receiver.running() as b, \
            Receiver.running() as own, Receiver.running() as bobs:
        succeeded = await make_endpoint(stack, a.url,
                                        event_types=["inferhook.prediction.succeeded"])
        thin = await make_endpoint(stack, b.url, models=["inferhook/digits"], payload="thin")
        bob = await stack.new_key("bob")
        await make_endpoint(stack, bobs.url, key=bob)

        digits = {"model": "inferhook/digits",
                  "input": example_input(stack.settings, "inferhook/digits"),
                  "webhook": own.url, "webhook_events_filter": ["completed"]}
        spin = {"model": "inferhook/spin", "input": {"milliseconds": 1}}
        ids = []
        for body in (digits, spin):
            created = await stack.create(body)
            assert created.status == 201, await created.text()
            ids.append((await created.json())["id"])
            await stack.wait_terminal(ids[-1])
        digits_id = ids[0]

        await a.wait_for(2)
        received = [verified(r, succeeded["secret"]) for r in a.requests]
        assert sorted(r["id"] for r in received) == sorted(ids)
        assert {r["status"] for r in received} == {"succeeded"}
        assert {r.headers["inferhook-event-type"] for r in a.requests} == {
            "inferhook.prediction.succeeded"}

        # created, started (running; loading on a cold start), succeeded of digits only, thin
        await wait_until(lambda: _has_type(b, "inferhook.prediction.succeeded"),
                         what="thin endpoint got the terminal event")
        thin_bodies = [verified(r, thin["secret"]) for r in b.requests]
        assert {t["id"] for t in thin_bodies} == {digits_id}
        types = [t["type"] for t in thin_bodies]
        assert types[0] == "inferhook.prediction.created" and "input" not in thin_bodies[0]
        assert set(thin_bodies[-1]) == {"id", "type", "status", "urls"}
        sequences = [int(r.headers["inferhook-sequence"]) for r in b.requests]
        assert len(set(sequences)) == len(sequences)

        # the prediction's own webhook works beside them, under the same webhook-id
        (mine,) = await own.wait_for(1)
        assert mine.json()["id"] == digits_id
        terminal = next(r for r in a.requests if r.json()["id"] == digits_id)
        assert mine.headers["webhook-id"] == terminal.headers["webhook-id"]
        assert mine.headers["webhook-signature"] != terminal.headers["webhook-signature"]
        assert bobs.requests == []


async def _has_type(receiver: Receiver, event_type: str) -> bool:
    return any(r.headers.get("inferhook-event-type") == event_type for r in receiver.requests)


@pytest.mark.timeout(240)
async def test_console_endpoints_page(stack: Stack, receiver: Receiver, tmp_path: Path) -> None:
    from tests.test_console import BROWSER_DIR, _node

    shots = tmp_path / "screenshots"
    shots.mkdir()
    options = {"baseUrl": stack.base_url, "key": stack.key, "receiverUrl": receiver.url,
               "shots": str(shots), "profile": str(tmp_path / "chromium-profile")}
    process = await asyncio.create_subprocess_exec(
        _node(), str(BROWSER_DIR / "endpoints.mjs"), json.dumps(options), cwd=BROWSER_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=150)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert process.returncode == 0 and "error" not in result, (
        f"{result.get('error')}\n{result['texts'].get('failure', '')[:3000]}\n"
        f"{err.decode()[-3000:]}")
    assert result["pageErrors"] == [] and result["foreignRequests"] == []
    texts = result["texts"]
    assert "its signing secret: whsec_" in texts["created"]
    assert "inferhook.prediction.succeeded, inferhook.endpoint.disabled" in texts["created"]
    assert "disabled by its owner" in texts["disabled"]
    assert "#0 test" in texts["deliveries"] and "HTTP 200" in texts["deliveries"]
    (test_event,) = await receiver.wait_for(1)
    assert test_event.json()["type"] == "webhook.test"
    for name in ("created", "disabled", "deliveries"):
        assert (shots / f"{name}.png").stat().st_size > 1000

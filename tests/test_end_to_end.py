"""One prediction through the whole path: ingest → Kafka → executor → dispatcher → webhook."""

from __future__ import annotations

import json

from standardwebhooks import Webhook

from tests.support import Receiver, Stack, example_input


async def test_prediction_reaches_signed_webhook_and_poll(stack: Stack, receiver: Receiver) -> None:
    body = {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits"),
            "webhook": receiver.url, "webhook_events_filter": ["completed"]}
    created = await stack.create(body)
    assert created.status == 201, await created.text()
    prediction = await created.json()
    assert prediction["status"] == "pending"
    assert prediction["output"] is None

    (delivery,) = await receiver.wait_for(1)
    async with stack.http.get(f"{stack.base_url}/v1/webhooks/default/secret",
                              headers=stack.auth()) as response:
        secret = (await response.json())["key"]
    assert secret.startswith("whsec_")
    verified = Webhook(secret).verify(delivery.body, delivery.headers)
    assert verified["id"] == prediction["id"]
    assert verified["status"] == "succeeded"
    assert verified["output"]["digit"] == 7
    assert delivery.headers["webhook-id"].startswith("msg_")

    polled = await stack.wait_terminal(prediction["id"])
    assert polled == json.loads(delivery.body)


async def test_default_filter_sends_start_twice_then_completed(stack: Stack,
                                                              receiver: Receiver) -> None:
    body = {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits"),
            "webhook": receiver.url}
    created = await stack.create(body)
    assert created.status == 201
    deliveries = await receiver.wait_for(3)
    statuses = [d.json()["status"] for d in deliveries]
    assert statuses == ["pending", "started", "succeeded"]  # `start` at create time and at start
    assert len({d.headers["webhook-id"] for d in deliveries}) == 3


async def test_get_right_after_create_is_never_404(stack: Stack) -> None:
    body = {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits")}
    for _ in range(20):
        created = await stack.create(body)
        assert created.status == 201
        prediction_id = (await created.json())["id"]
        fetched = await stack.get(prediction_id)
        assert fetched.status == 200, f"GET right after 201 gave {fetched.status}"


async def test_other_owner_gets_404_not_403(stack: Stack) -> None:
    body = {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits")}
    created = await stack.create(body)
    prediction_id = (await created.json())["id"]
    bob = await stack.new_key("bob")
    assert (await stack.get(prediction_id, key=bob)).status == 404
    assert (await stack.get(prediction_id)).status == 200

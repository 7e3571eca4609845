"""The webhook routes of the API: secret rotation, delivery history, redelivery, failures."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook

from inferhook.settings import Settings
from tests.support import Receiver, Stack, example_input, wait_until


def body_for(stack: Stack, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    return {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits"),
            "webhook": receiver.url, "webhook_events_filter": events or ["completed"]}


async def call(stack: Stack, method: str, path: str, key: str | None = None) -> tuple[int, Any]:
    async with stack.http.request(method, f"{stack.base_url}{path}",
                                  headers=stack.auth(key)) as response:
        return response.status, await response.json(content_type=None)


async def create(stack: Stack, receiver: Receiver, events: list[str] | None = None) -> str:
    created = await stack.create(body_for(stack, receiver, events))
    assert created.status == 201, await created.text()
    prediction_id: str = (await created.json())["id"]
    return prediction_id


async def test_delivery_history_lists_every_attempt(stack: Stack, receiver: Receiver) -> None:
    receiver.statuses = [503]
    prediction_id = await create(stack, receiver)
    await receiver.wait_for(2)

    async def two_attempts() -> bool:
        status, page = await call(stack, "GET", f"/v1/predictions/{prediction_id}/webhooks")
        return status == 200 and len(page["results"]) == 1 and len(
            page["results"][0]["attempt_log"]) == 2 and page["results"][0]["state"] == "delivered"
    await wait_until(two_attempts, what="two attempts listed")
    _, page = await call(stack, "GET", f"/v1/predictions/{prediction_id}/webhooks")
    (delivery,) = page["results"]
    assert delivery["webhook_id"] == receiver.requests[0].headers["webhook-id"]
    assert delivery["event_type"] == "inferhook.prediction.succeeded"
    first, second = delivery["attempt_log"]
    assert (first["status_code"], first["error"]) == (503, "HTTP 503")
    assert (second["status_code"], second["response"]) == (200, "ok")
    assert first["latency_ms"] >= 0 and first["time"] <= second["time"]
    bob = await stack.new_key("bob")
    status, problem = await call(stack, "GET", f"/v1/predictions/{prediction_id}/webhooks", bob)
    assert status == 404 and problem["status"] == 404


async def test_redeliver_sends_the_same_message_again(stack: Stack, receiver: Receiver) -> None:
    prediction_id = await create(stack, receiver)
    (first,) = await receiver.wait_for(1)
    await wait_until(lambda: _state_is(stack, prediction_id, "delivered"), what="delivered")
    status, delivery = await call(stack, "POST",
                                  f"/v1/predictions/{prediction_id}/webhooks/redeliver")
    assert status == 202 and delivery["state"] == "pending"
    _, second = await receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.json() == first.json()
    bob = await stack.new_key("bob")
    status, _ = await call(stack, "POST", f"/v1/predictions/{prediction_id}/webhooks/redeliver",
                           bob)
    assert status == 404


async def _state_is(stack: Stack, prediction_id: str, state: str) -> bool:
    _, page = await call(stack, "GET", f"/v1/predictions/{prediction_id}/webhooks")
    return bool(page["results"]) and all(d["state"] == state for d in page["results"])


async def test_failed_deliveries_are_listed_for_the_account(stack: Stack,
                                                            receiver: Receiver) -> None:
    receiver.statuses = [410]
    prediction_id = await create(stack, receiver)
    await wait_until(lambda: _state_is(stack, prediction_id, "failed"), what="failed")
    status, page = await call(stack, "GET", "/v1/webhooks/deliveries?status=failed")
    assert status == 200
    assert [d["prediction_id"] for d in page["results"]] == [prediction_id]
    _, delivered = await call(stack, "GET", "/v1/webhooks/deliveries?status=delivered")
    assert delivered["results"] == []
    bob = await stack.new_key("bob")
    _, others = await call(stack, "GET", "/v1/webhooks/deliveries?status=failed", bob)
    assert others["results"] == []
    status, problem = await call(stack, "GET", "/v1/webhooks/deliveries?status=lost")
    assert status == 400 and problem["errors"][0]["loc"] == ["query", "status"]


async def test_rotation_signs_with_both_secrets_during_the_grace(stack: Stack,
                                                                 receiver: Receiver) -> None:
    _, old = await call(stack, "GET", "/v1/webhooks/default/secret")
    status, rotated = await call(stack, "POST", "/v1/webhooks/default/secret/rotate")
    assert status == 200
    assert rotated["key"] != old["key"] and rotated["previous_key"] == old["key"]
    assert rotated["previous_key_expires_at"] is not None
    await create(stack, receiver)
    (delivery,) = await receiver.wait_for(1)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    for secret in (old["key"], rotated["key"]):
        assert Webhook(secret).verify(delivery.body, delivery.headers)["status"] == "succeeded"
    _, now = await call(stack, "GET", "/v1/webhooks/default/secret")
    assert now["key"] == rotated["key"]


@pytest.fixture
def ed25519_settings(settings: Settings) -> Settings:
    settings.webhook.ed25519 = True
    settings.webhook.rotation_grace = 0.0
    return settings


@pytest.mark.usefixtures("ed25519_settings")
async def test_ed25519_signatures_and_grace_over(stack: Stack, receiver: Receiver) -> None:
    await call(stack, "POST", "/v1/webhooks/default/secret/rotate")  # grace 0: old one gone
    _, keys = await call(stack, "GET", "/v1/webhooks/default/secret")
    assert keys["previous_key"] is None and keys["public_key"].startswith("whpk_")
    await create(stack, receiver)
    (delivery,) = await receiver.wait_for(1)
    signatures = delivery.headers["webhook-signature"].split(" ")
    assert [s.split(",")[0] for s in signatures] == ["v1", "v1a"]
    Webhook(keys["key"]).verify(delivery.body, delivery.headers)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(keys["public_key"][5:]))
    signed = (f"{delivery.headers['webhook-id']}.{delivery.headers['webhook-timestamp']}."
              .encode() + delivery.body)
    public.verify(base64.b64decode(signatures[1][4:]), signed)

"""verify_webhook and the receiver helpers against deliveries the real dispatcher sends; the
Kafka helper against the real events topic."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest
from aiohttp import web
from inferhook_client import AsyncClient, Delivery, Prediction, WebhookVerificationError, verify_webhook
from inferhook_client.kafka import iter_events
from inferhook_client.receivers import aiohttp_handler, wsgi_app

from tests.support import Received, Receiver, Stack, free_port, wait_until


async def delivered(stack: Stack, receiver: Receiver) -> tuple[Received, str, str]:
    """A real terminal delivery to `receiver`, the account's secret and the prediction id."""
    async with AsyncClient(stack.base_url, stack.key) as client:
        created = await client.predictions.create("inferhook/spin", {"milliseconds": 1},
                                                  webhook=receiver.url,
                                                  webhook_events_filter=["completed"])
        secret = (await client.webhooks.secret()).key
    requests = await receiver.wait_for(1)
    return requests[0], secret, created.id


async def test_verify_webhook_accepts_a_real_delivery_and_rejects_tampering(
        stack: Stack, receiver: Receiver) -> None:
    request, secret, prediction_id = await delivered(stack, receiver)
    prediction = verify_webhook(request.headers, request.body, secret)
    assert isinstance(prediction, Prediction)
    assert prediction.id == prediction_id and prediction.status == "succeeded"
    assert verify_webhook(request.headers, request.body, ["whsec_" + "A" * 32, secret]).id == prediction_id

    tampered = request.body.replace(b'"succeeded"', b'"failed"')
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.headers, tampered, secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request.headers, request.body, "whsec_" + "A" * 32)
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(request.headers, request.body, secret, now=time.time() + 301)
    forged = {**request.headers, "webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(forged, request.body, secret)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({}, request.body, secret)


async def test_wsgi_app_verifies_before_calling_back(stack: Stack, receiver: Receiver) -> None:
    request, secret, prediction_id = await delivered(stack, receiver)
    got: list[Delivery] = []
    app = wsgi_app(secret, got.append)

    def call(body: bytes) -> str:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items()}}
        statuses: list[str] = []
        b"".join(app(environ, lambda status, headers: statuses.append(status)))
        return statuses[0]

    assert call(request.body) == "204 No Content"
    assert call(request.body + b" ") == "401 Unauthorized"
    assert [d.prediction.id for d in got] == [prediction_id]
    assert got[0].webhook_id == request.headers["webhook-id"]


async def test_aiohttp_handler_receives_real_deliveries(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, stack.key) as client:
        secret = (await client.webhooks.secret()).key
        got: asyncio.Queue[Delivery] = asyncio.Queue()

        async def on_delivery(delivery: Delivery) -> None:
            await got.put(delivery)

        app = web.Application()
        app.router.add_post("/hook", aiohttp_handler(secret, on_delivery))
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            created = await client.predictions.create(
                "inferhook/spin", {"milliseconds": 1}, webhook=f"http://127.0.0.1:{port}/hook",
                webhook_events_filter=["completed"])
            delivery = await asyncio.wait_for(got.get(), timeout=30)
        finally:
            await runner.cleanup()
    assert delivery.prediction.id == created.id and delivery.prediction.status == "succeeded"

    async def recorded() -> bool:
        async with stack.http.get(f"{stack.base_url}/v1/predictions/{created.id}/webhooks",
                                  headers=stack.auth()) as response:
            body = await response.json()
        return bool(body["results"]) and body["results"][0]["state"] == "delivered"

    await wait_until(recorded, timeout=10, what="delivery recorded as delivered")


async def test_iter_events_yields_typed_events_from_kafka(stack: Stack) -> None:
    topic = f"{stack.settings.kafka.topic_prefix}.events"
    async with AsyncClient(stack.base_url, stack.key) as client:
        created = await client.predictions.create("inferhook/spin", {"milliseconds": 1})

        async def lifecycle() -> list[str]:
            kinds: list[str] = []
            async for event in iter_events(stack.settings.kafka.bootstrap, topic, from_beginning=True):
                if event.prediction_id == created.id:
                    kinds.append(event.kind)
                    if event.is_terminal:
                        return kinds
            return kinds

        kinds = await asyncio.wait_for(lifecycle(), timeout=60)
    assert kinds[0] == "created" and kinds[-1] == "succeeded"
    assert len(kinds) == len(set(kinds))

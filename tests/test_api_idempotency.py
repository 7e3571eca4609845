"""Idempotency-Key: one prediction per owner, key and body, even under concurrent twins."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import uuid_utils
from sqlalchemy import text

from inferhook.db import create_engine
from schemas.events import utcnow
from tests.support import Stack, example_input

DIGITS = "inferhook/digits"


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": DIGITS, "input": example_input(stack.settings, DIGITS)}


async def sql(stack: Stack, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(stack.settings.database)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_same_key_same_body_returns_the_original(stack: Stack) -> None:
    first = await stack.create(digits(stack), headers={"Idempotency-Key": "order-1"})
    assert first.status == 201
    original = await first.json()
    again = await stack.create(digits(stack), headers={"Idempotency-Key": "order-1"})
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == original["id"]
    assert len(await sql(stack, "SELECT id FROM predictions")) == 1


async def test_same_key_other_body_is_409(stack: Stack) -> None:
    assert (await stack.create(digits(stack), headers={"Idempotency-Key": "k"})).status == 201
    other = {**digits(stack), "webhook_events_filter": ["completed"]}
    response = await stack.create(other, headers={"Idempotency-Key": "k"})
    assert response.status == 409
    assert "different request body" in (await response.json())["detail"]
    assert len(await sql(stack, "SELECT id FROM predictions")) == 1


async def test_key_order_and_spacing_do_not_make_another_body(stack: Stack) -> None:
    body = digits(stack)
    first = await stack.create(body, headers={"Idempotency-Key": "order"})
    reordered = {"input": body["input"], "model": body["model"]}
    again = await stack.create(reordered, headers={"Idempotency-Key": "order"})
    assert again.status == 200
    assert (await again.json())["id"] == (await first.json())["id"]


async def test_keys_are_per_owner(stack: Stack) -> None:
    bob = await stack.new_key("bob")
    mine = await (await stack.create(digits(stack), headers={"Idempotency-Key": "shared"})).json()
    response = await stack.create(digits(stack), key=bob, headers={"Idempotency-Key": "shared"})
    assert response.status == 201
    assert (await response.json())["id"] != mine["id"]


async def test_concurrent_twins_make_one_prediction(stack: Stack) -> None:
    responses = await asyncio.gather(*(
        stack.create(digits(stack), headers={"Idempotency-Key": "burst"}) for _ in range(12)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 11 + [201], statuses
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert len(await sql(stack, "SELECT id FROM predictions")) == 1


async def test_reservation_left_by_a_failed_create_does_not_block_a_retry(stack: Stack) -> None:
    # What a creator leaves when Kafka refused the event and Postgres then refused the
    # release: an uncommitted reservation naming a prediction that never came to exist.
    ghost = str(uuid_utils.uuid7())
    await sql(stack, "INSERT INTO idempotency_keys VALUES ('alice', 'retry-me', 'whatever', :id, "
                     ":at, false)", id=ghost, at=utcnow() - timedelta(minutes=5))
    response = await stack.create(digits(stack), headers={"Idempotency-Key": "retry-me"})
    assert response.status == 201, await response.text()
    assert (await response.json())["id"] != ghost


async def test_expired_key_makes_a_new_prediction(stack: Stack) -> None:
    first = await (await stack.create(digits(stack), headers={"Idempotency-Key": "old"})).json()
    await sql(stack, "UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")
    response = await stack.create(digits(stack), headers={"Idempotency-Key": "old"})
    assert response.status == 201
    assert (await response.json())["id"] != first["id"]


async def test_bad_idempotency_key_is_400(stack: Stack) -> None:
    for key in ("x" * 256, "with space", "ünïcode"):
        response = await stack.create(digits(stack), headers={"Idempotency-Key": key})
        assert response.status == 400, key
    assert await sql(stack, "SELECT id FROM predictions") == []


async def test_a_create_that_died_between_its_two_writes_is_finished_by_the_retry(
        stack: Stack) -> None:
    # The first ingest reserved the key and wrote `created` to the events topic, then died
    # before writing the request: the prediction exists (the projector made its row) but
    # nothing would ever run it. The client's retry with the same key must run it.
    from ingest.idempotency import body_hash
    from schemas.api import PredictionCreate
    from schemas.events import Created
    from tests.support import EventWriter, wait_until

    body = digits(stack)
    prediction_id = str(uuid_utils.uuid7())
    owner = (await sql(stack, "SELECT owner FROM api_keys LIMIT 1"))[0].owner
    await sql(stack, "INSERT INTO idempotency_keys (owner, key, body_hash, prediction_id, "
                     "created_at, committed) VALUES (:o, 'crash-1', :h, :p, now(), false)",
              o=owner, h=body_hash(PredictionCreate.model_validate(body)), p=prediction_id)
    async with EventWriter(stack.settings) as events:
        await events.send(prediction_id, 0, Created(owner=owner, model=DIGITS,
                                                    input=body["input"], created_at=utcnow()))

    async def projected() -> bool:
        return (await stack.get(prediction_id)).status == 200

    await wait_until(projected, what="the orphan prediction projected")
    again = await stack.create(body, headers={"Idempotency-Key": "crash-1"})
    assert again.status == 200 and (await again.json())["id"] == prediction_id
    done = await stack.wait_terminal(prediction_id)
    assert done["status"] == "succeeded" and done["output"]["digit"] == 7
    reservation = await sql(stack, "SELECT committed FROM idempotency_keys WHERE key = 'crash-1'")
    assert reservation[0].committed is True

"""The Python client (client/) against the real stack: create, wait, cancel, stream, list, run.

The stack runs in the test's event loop, so the blocking Client runs in a thread.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from inferhook_client import (
    AsyncClient,
    Client,
    InferhookTimeout,
    NotFound,
    PredictionCanceled,
    Status,
    ValidationError,
)

from tests.support import Stack, example_input

DIGITS, SPIN = "inferhook/digits", "inferhook/spin"


async def test_sync_create_wait_get_and_events(stack: Stack) -> None:
    image = example_input(stack.settings, DIGITS)

    def scenario() -> None:
        with Client(stack.base_url, stack.key) as client:
            created = client.predictions.create(DIGITS, image)
            assert created.status is Status.PENDING
            done = client.predictions.wait(created.id, timeout=30)
            assert done.status is Status.SUCCEEDED and done.output["digit"] == 7
            assert {"queue_time", "predict_time", "total_time"} <= done.metrics.keys()
            assert client.predictions.get(created.id).id == created.id
            kinds = [e.kind for e in client.predictions.events(created.id)]
            assert kinds[0] == "created" and kinds[-1] == "succeeded"
            later = client.predictions.events(created.id, after=0)
            assert all(e.sequence > 0 for e in later) and later[0].prediction_id == created.id

    await asyncio.to_thread(scenario)


async def test_sync_create_with_prefer_wait_and_run(stack: Stack) -> None:
    def scenario() -> None:
        with Client(stack.base_url, stack.key) as client:
            waited = client.predictions.create(SPIN, {"milliseconds": 5}, wait=True)
            assert waited.status is Status.SUCCEEDED
            output = client.predictions.run(SPIN, {"milliseconds": 5}, timeout=30)
            assert output["milliseconds"] == 5

    await asyncio.to_thread(scenario)


async def test_sync_errors_are_typed(stack: Stack) -> None:
    def scenario() -> None:
        with Client(stack.base_url, stack.key) as client:
            with pytest.raises(NotFound):
                client.predictions.get("00000000-0000-0000-0000-000000000000")
            with pytest.raises(ValidationError) as caught:
                client.predictions.create(SPIN, {"milliseconds": "soon"})
            assert caught.value.status == 422
            assert any("milliseconds" in map(str, e["loc"]) for e in caught.value.errors)

    await asyncio.to_thread(scenario)


async def test_sync_list_follows_every_page(stack: Stack) -> None:
    def scenario() -> None:
        with Client(stack.base_url, stack.key) as client:
            made = {client.predictions.create(SPIN, {"milliseconds": 1}).id for _ in range(5)}
            listed = [p.id for p in client.predictions.list(limit=2)]
            assert set(listed) == made and len(listed) == 5
            spins = list(client.predictions.list(model=SPIN, limit=3))
            assert len(spins) == 5

    await asyncio.to_thread(scenario)


async def test_sync_cancel_and_run_raises_canceled(stack: Stack) -> None:
    def scenario() -> None:
        with Client(stack.base_url, stack.key) as client:
            created = client.predictions.create(SPIN, {"milliseconds": 20_000})
            canceled = client.predictions.cancel(created.id, wait=10)
            assert canceled.status is Status.CANCELED
            assert canceled.error is not None and canceled.error.reason == "canceled_by_user"
            again = client.predictions.cancel(created.id)
            assert again.status is Status.CANCELED

    await asyncio.to_thread(scenario)


async def test_sync_stream_yields_the_lifecycle(stack: Stack) -> None:
    def scenario() -> list[tuple[int, str]]:
        with Client(stack.base_url, stack.key) as client:
            created = client.predictions.create(SPIN, {"milliseconds": 300})
            return [(e.sequence, e.kind) for e in client.predictions.stream(created.id)]

    seen = await asyncio.to_thread(scenario)
    kinds = [kind for _, kind in seen]
    assert kinds[0] == "created" and "started" in kinds and kinds[-1] == "succeeded"
    sequences = [sequence for sequence, _ in seen]
    assert sequences == sorted(set(sequences))


async def test_async_create_wait_stream_list_cancel(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, stack.key) as client:
        created = await client.predictions.create(SPIN, {"milliseconds": 200})
        events = [e async for e in client.predictions.stream(created.id)]
        assert events[-1].kind == "succeeded" and events[-1].is_terminal
        done = await client.predictions.wait(created.id, timeout=10)
        assert done.status is Status.SUCCEEDED
        long = await client.predictions.create(SPIN, {"milliseconds": 20_000})
        assert (await client.predictions.cancel(long.id, wait=10)).status is Status.CANCELED
        listed = [p.id async for p in client.predictions.list(limit=1)]
        assert listed == [long.id, created.id]
        output = await client.predictions.run(DIGITS, example_input(stack.settings, DIGITS), timeout=30)
        assert output["digit"] == 7


async def test_run_raises_with_the_error_when_canceled(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, stack.key) as client:
        runner = asyncio.create_task(client.predictions.run(SPIN, {"milliseconds": 20_000}, timeout=30))
        newest: list[str] = []
        while not newest:
            await asyncio.sleep(0.05)
            newest = [p.id async for p in client.predictions.list(limit=1)]
        await client.predictions.cancel(newest[0])
        with pytest.raises(PredictionCanceled) as caught:
            await runner
        error = caught.value.prediction.error
        assert error is not None and error.reason == "canceled_by_user"


async def test_wait_never_hangs_past_its_timeout(stack: Stack) -> None:
    async with AsyncClient(stack.base_url, stack.key) as client:
        long = await client.predictions.create(SPIN, {"milliseconds": 25_000})
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await client.predictions.wait(long.id, timeout=1.5)
        elapsed = time.monotonic() - started
        assert isinstance(caught.value, InferhookTimeout)
        assert 1.4 <= elapsed < 2.5, elapsed

        def blocking() -> float:
            with Client(stack.base_url, stack.key) as sync:
                begin = time.monotonic()
                with pytest.raises(InferhookTimeout):
                    sync.predictions.run(SPIN, {"milliseconds": 25_000}, timeout=2.3)
                return time.monotonic() - begin

        assert await asyncio.to_thread(blocking) < 3.3
        await client.predictions.cancel(long.id)
        for p in [p async for p in client.predictions.list(status="started")]:
            await client.predictions.cancel(p.id)
        for p in [p async for p in client.predictions.list(status="pending")]:
            await client.predictions.cancel(p.id)


async def test_a_priority_and_where_a_pending_prediction_stands(idle_stack: Stack) -> None:
    async with AsyncClient(idle_stack.base_url, idle_stack.key) as client:
        first = await client.predictions.create(SPIN, {"milliseconds": 5}, priority="batch")
        urgent = await client.predictions.create(SPIN, {"milliseconds": 5}, priority="interactive")
        assert (first.priority, urgent.priority) == ("batch", "interactive")
        assert (await client.predictions.get(first.id)).queue_position == 2
        assert (await client.predictions.get(urgent.id)).queue_position == 1

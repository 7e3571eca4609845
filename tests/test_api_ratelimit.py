"""Per-key rate limits: token buckets for creates and reads, 429 with the headers."""

from __future__ import annotations

from typing import Any

import pytest

from inferhook.settings import ApiSettings, Settings
from ingest.ratelimit import Kind, RateLimiter, TokenBucket
from tests.support import Stack, example_input


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_spends_its_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == 1
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert bucket.take(10.0)
    assert bucket.headers() == {"RateLimit-Limit": "3", "RateLimit-Remaining": "2",
                                "RateLimit-Reset": "1"}


def test_limiter_keeps_keys_and_kinds_apart() -> None:
    clock = Clock()
    limiter = RateLimiter(ApiSettings(create_rate=1, create_burst=1, read_rate=1, read_burst=2),
                          clock=clock)
    assert limiter.take("a", Kind.CREATE)[0]
    assert not limiter.take("a", Kind.CREATE)[0]
    assert limiter.take("a", Kind.READ)[0]
    assert limiter.take("b", Kind.CREATE)[0]
    clock.now += 1
    assert limiter.take("a", Kind.CREATE)[0]


@pytest.fixture
def tight(settings: Settings) -> Settings:
    return settings.model_copy(update={"api": ApiSettings(create_rate=0.1, create_burst=2,
                                                          read_rate=0.1, read_burst=3)})


def digits(stack: Stack) -> dict[str, Any]:
    return {"model": "inferhook/digits", "input": example_input(stack.settings, "inferhook/digits")}


async def test_creates_and_reads_are_limited_separately(tight: Settings, clean_db: None) -> None:
    async with Stack.running(tight, executor=False) as stack:
        first = await stack.create(digits(stack))
        assert first.status == 201
        assert first.headers["RateLimit-Limit"] == "2"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert (await stack.create(digits(stack))).status == 201
        refused = await stack.create(digits(stack))
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert int(refused.headers["RateLimit-Reset"]) >= 1

        prediction_id = (await first.json())["id"]
        statuses = [(await stack.get(prediction_id)).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]

        bob = await stack.new_key("bob")
        assert (await stack.create(digits(stack), key=bob)).status == 201
        async with stack.http.get(f"{stack.base_url}/healthz") as health:
            assert health.status == 200

"""Admission control through the real stack: past a model's queue cap, an account's or an API
key's cap on predictions in flight, a create gets 429 with Retry-After and RateLimit headers, and nothing
reaches Kafka (the topics' end offsets do not move). Also the policy without servers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from inferhook.catalog import load_catalog
from inferhook.settings import Settings
from ingest.admission import RETRY_AFTER, judge, queue_limit, retry_after
from ingest.state import CATALOG, SETTINGS
from schemas.events import CREATED_SEQUENCE, Created, utcnow
from schemas.topics import Topics
from tests.support import EventWriter, Stack, end_offsets, query, wait_until

SPIN = "inferhook/spin"
DIGITS = "inferhook/digits"
RUN = {"model": SPIN, "input": {"milliseconds": 5}}


def spin_topics(settings: Settings) -> list[str]:
    topics = Topics(settings.kafka.topic_prefix)
    return [topics.events, *topics.all_requests(SPIN)]


async def running_with(settings: Settings, **api: object) -> AsyncIterator[Stack]:
    limited = settings.model_copy(update={"api": settings.api.model_copy(update=api)})
    async with Stack.running(limited, executor=False) as stack:
        yield stack


@pytest.fixture
async def capped(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    """Ingest and the dispatcher, no executor: spin's queue capped at 3 (over its manifest)."""
    async for stack in running_with(settings, queue_depth_limits={SPIN: 3}):
        yield stack


@pytest.fixture
async def account_capped(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    """Ingest and the dispatcher, no executor: each account at 5 predictions in flight."""
    async for stack in running_with(settings, max_in_flight_per_owner=5):
        yield stack


@pytest.fixture
async def key_capped(settings: Settings, clean_db: None) -> AsyncIterator[Stack]:
    """Ingest and the dispatcher, no executor: each API key at 3 predictions in flight, each
    account at 5."""
    async for stack in running_with(settings, max_in_flight_per_key=3, max_in_flight_per_owner=5):
        yield stack


async def test_a_full_queue_refuses_with_429_and_writes_nothing(capped: Stack) -> None:
    for priority in ("batch", "default", "interactive"):
        assert (await capped.create({**RUN, "priority": priority})).status == 201
    before = await end_offsets(capped.settings, spin_topics(capped.settings))
    refused = await capped.create({**RUN, "priority": "interactive"},
                                  headers={"Idempotency-Key": "full-1"})
    assert refused.status == 429
    assert refused.content_type == "application/problem+json"
    body = await refused.json()
    assert body["type"].endswith("/queue-full") and SPIN in body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert await end_offsets(capped.settings, spin_topics(capped.settings)) == before
    # Other models are not capped; the refused key is free to be used again.
    assert (await capped.create({"model": DIGITS, "input": {"image": [[0.0] * 28] * 28}})
            ).status in (201, 422)
    again = await capped.create({**RUN, "priority": "interactive"},
                                headers={"Idempotency-Key": "full-1"})
    assert again.status == 429, "a refusal does not hold the Idempotency-Key"


async def test_an_account_at_its_cap_is_refused_and_others_are_not(account_capped: Stack) -> None:
    capped = account_capped
    for _ in range(5):
        assert (await capped.create(RUN)).status == 201
    before = await end_offsets(capped.settings, spin_topics(capped.settings))
    refused = await capped.create(RUN)
    assert refused.status == 429 and refused.headers["RateLimit-Limit"] == "5"
    assert "Retry-After" in refused.headers
    assert await end_offsets(capped.settings, spin_topics(capped.settings)) == before
    other = await capped.new_key("someone-else")
    assert (await capped.create(RUN, key=other)).status == 201


async def test_a_key_at_its_cap_is_refused_and_the_accounts_other_key_is_not(
        key_capped: Stack) -> None:
    capped = key_capped
    second = await capped.new_key("alice")  # the stack's own key is alice's too
    for _ in range(3):
        assert (await capped.create(RUN)).status == 201
    before = await end_offsets(capped.settings, spin_topics(capped.settings))
    refused = await capped.create(RUN, headers={"Idempotency-Key": "key-1"})
    assert refused.status == 429
    body = await refused.json()
    assert body["type"].endswith("/queue-full") and "API key" in body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert (refused.headers["RateLimit-Limit"], refused.headers["RateLimit-Remaining"]) == ("3", "0")
    assert await end_offsets(capped.settings, spin_topics(capped.settings)) == before
    again = await capped.create(RUN, headers={"Idempotency-Key": "key-1"})
    assert again.status == 429, "a refusal does not hold the Idempotency-Key"
    # The account's other key has its own count; the account's cap (5) still holds both.
    assert (await capped.create(RUN, key=second)).status == 201
    assert (await capped.create(RUN, key=second)).status == 201
    over = await capped.create(RUN, key=second)
    assert over.status == 429 and over.headers["RateLimit-Limit"] == "5"
    rows = await query(capped.settings, "SELECT api_key_id, count(*) AS n FROM predictions "
                                        "GROUP BY api_key_id ORDER BY n DESC")
    assert [row["n"] for row in rows] == [3, 2] and all(row["api_key_id"] for row in rows)


async def test_the_projector_records_the_key_from_created(key_capped: Stack) -> None:
    """A `created` ingest did not write a row for (a replay from Kafka, or a failed insert)
    rebuilds the key with the rest of the row."""
    created = Created(owner="alice", model=SPIN, input={"milliseconds": 5}, created_at=utcnow(),
                      api_key_id="digest-of-some-key")
    async with EventWriter(key_capped.settings) as events:
        await events.send("replayed-1", CREATED_SEQUENCE, created)

    async def projected() -> list[dict[str, object]]:
        return await query(key_capped.settings,
                           "SELECT api_key_id, status FROM predictions WHERE id = 'replayed-1'")

    async def known() -> bool:
        return bool(await projected())

    await wait_until(known, what="projection of created")
    assert await projected() == [{"api_key_id": "digest-of-some-key", "status": "pending"}]


def test_judge_admits_under_every_cap_and_refuses_at_one() -> None:
    assert judge(model=SPIN, queued=2, queue_limit=3, owner_open=4, owner_limit=5) is None
    assert judge(model=SPIN, queued=None, queue_limit=None, owner_open=None, owner_limit=0) is None
    full = judge(model=SPIN, queued=3, queue_limit=3, owner_open=0, owner_limit=5)
    assert full is not None and full.limit == 3
    busy = judge(model=SPIN, queued=0, queue_limit=3, owner_open=5, owner_limit=5)
    assert busy is not None and busy.limit == 5 and "account" in busy.detail
    assert judge(model=SPIN, queued=None, queue_limit=None, owner_open=1, owner_limit=5,
                 key_open=2, key_limit=3) is None
    key = judge(model=SPIN, queued=None, queue_limit=None, owner_open=3, owner_limit=5,
                key_open=3, key_limit=3)
    assert key is not None and key.limit == 3 and "API key" in key.detail


def test_the_setting_overrides_the_manifests_cap(settings: Settings) -> None:
    catalog = load_catalog(settings.models_dir)
    spin = catalog[SPIN]
    catalog[SPIN] = dataclasses.replace(
        spin, manifest=spin.manifest.model_copy(update={"max_queue_depth": 50}))
    app = web.Application()
    app[CATALOG] = catalog
    app[SETTINGS] = settings
    assert queue_limit(app, SPIN) == 50
    assert queue_limit(app, DIGITS) is None
    app[SETTINGS] = settings.model_copy(update={"api": settings.api.model_copy(
        update={"queue_depth_limits": {SPIN: 7, DIGITS: 9}})})
    assert (queue_limit(app, SPIN), queue_limit(app, DIGITS)) == (7, 9)


def test_retry_after_follows_the_throughput() -> None:
    assert retry_after(10, None) == RETRY_AFTER
    assert retry_after(10, 20.0) == 1
    assert retry_after(100, 4.0) == 25
    assert retry_after(10**9, 1.0) == 300

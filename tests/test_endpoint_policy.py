"""The endpoint delivery rules as pure functions: health, rate windows, filters, payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from dispatcher.fanout import body_for, deliveries
from dispatcher.fold import Published
from dispatcher.health import Health, after_attempt
from dispatcher.pacing import RateWindow
from schemas.endpoints import EndpointEvent, is_endpoint_event, matches
from store.endpoints import EndpointRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FIVE_DAYS = timedelta(days=5)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_failing_then_disabled_then_recovered() -> None:
    health = Health()
    health, event = after_attempt(health, ok=False, at=at(0), now=at(0), disable_after=FIVE_DAYS)
    assert (health.failing_since, event) == (at(0), None)
    health, event = after_attempt(health, ok=False, at=at(59), now=at(59),
                                  disable_after=FIVE_DAYS)
    assert event is None
    health, event = after_attempt(health, ok=False, at=at(60), now=at(60),
                                  disable_after=FIVE_DAYS)
    assert event is EndpointEvent.FAILING and health.warned and not health.disabled
    health, event = after_attempt(health, ok=False, at=at(80), now=at(80),
                                  disable_after=FIVE_DAYS)
    assert event is None  # warned once per spell
    health, event = after_attempt(health, ok=False, at=at(120), now=at(120),
                                  disable_after=FIVE_DAYS)
    assert event is EndpointEvent.DISABLED and health.disabled
    health, event = after_attempt(health, ok=False, at=at(130), now=at(130),
                                  disable_after=FIVE_DAYS)
    assert event is None  # disabled once
    health, event = after_attempt(health, ok=True, at=at(140), now=at(140),
                                  disable_after=FIVE_DAYS)
    assert event is EndpointEvent.RECOVERED and health.failing_since is None


def test_a_success_ends_the_spell_quietly_before_a_warning() -> None:
    health, _ = after_attempt(Health(), ok=False, at=at(0), now=at(0), disable_after=FIVE_DAYS)
    health, event = after_attempt(health, ok=True, at=at(1), now=at(1), disable_after=FIVE_DAYS)
    assert (health, event) == (Health(), None)
    health, event = after_attempt(health, ok=False, at=at(100), now=at(100),
                                  disable_after=FIVE_DAYS)
    assert health.failing_since == at(100) and event is None  # a new spell starts now


def test_rate_window_allows_rate_starts_per_second() -> None:
    window = RateWindow(3)
    for now in (0.0, 0.1, 0.2):
        assert window.delay(now) == 0.0
        window.take(now)
    assert window.room(0.3) == 0
    assert abs(window.delay(0.3) - 0.7) < 1e-9  # the start at 0.0 leaves the window at 1.0
    assert window.delay(1.0) == 0.0 and window.room(1.0) == 1


def endpoint(**fields: object) -> EndpointRecord:
    values: dict[str, object] = {
        "id": "ep_1", "owner": "alice", "url": "https://example.com/hook", "description": "",
        "event_types": [], "models": [], "rate_limit": None, "ordered": False,
        "payload": "full", "secret": "whsec_x", "previous_secret": None,
        "previous_expires_at": None, "created_at": T0, "updated_at": T0, "disabled_at": None,
        "disabled_reason": None, "failing_since": None, "warned": False, "rate_slot_at": None}
    values.update(fields)
    return EndpointRecord(**values)  # type: ignore[arg-type]


def event(event_type: str = "inferhook.prediction.succeeded", body: bytes = b'{"id":"p"}',
          owner: str = "alice", model: str = "inferhook/digits") -> Published:
    return Published("p-1", owner, model, event_type, 7, "succeeded", body)


def test_filters() -> None:
    assert matches("inferhook.prediction.created", "a/b", event_types=[], models=[])
    assert not matches("inferhook.prediction.created", "a/b",
                       event_types=["inferhook.prediction.succeeded"], models=[])
    assert not matches("inferhook.prediction.created", "a/b", event_types=[], models=["c/d"])
    assert matches("inferhook.endpoint.disabled", None, event_types=[], models=["c/d"])


def test_fanout_rows_per_matching_endpoint_of_the_owner() -> None:
    owned = [endpoint(id="ep_all"), endpoint(id="ep_other_model", models=["x/y"]),
             endpoint(id="ep_off", disabled_at=T0), endpoint(id="ep_bob", owner="bob")]
    rows = deliveries([event()], owned, "http://api", 1024, T0)
    assert [(r.endpoint_id, r.skipped) for r in rows] == [("ep_all", False), ("ep_off", True)]
    assert {r.webhook_id for r in rows} == {"msg_p1_7"}


def test_full_payload_over_the_cap_is_sent_thin() -> None:
    big = orjson.dumps({"id": "p-1", "output": "x" * 100})
    assert body_for(event(body=big), endpoint(), "http://api", 1000) == big
    thin = orjson.loads(body_for(event(body=big), endpoint(), "http://api", 50))
    assert thin == {"id": "p-1", "type": "inferhook.prediction.succeeded", "status": "succeeded",
                    "urls": {"get": "http://api/v1/predictions/p-1",
                             "cancel": "http://api/v1/predictions/p-1/cancel",
                             "events": "http://api/v1/predictions/p-1/events",
                             "stream": "http://api/v1/predictions/p-1/stream"}}
    assert orjson.loads(body_for(event(body=big), endpoint(payload="thin"), "http://api",
                                 10_000)) == thin


def test_endpoint_events_are_told_apart_on_the_event_topic() -> None:
    assert is_endpoint_event([("ce_specversion", b"1.0"), ("ce_type", b"inferhook.endpoint.disabled")])
    assert not is_endpoint_event([("ce_type", b"inferhook.prediction.succeeded")])

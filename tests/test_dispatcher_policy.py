"""The dispatcher's pure rules, without servers: fold, throttle, backoff, breaker, signing, SSRF."""

from __future__ import annotations

import base64
import ipaddress
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook

from dispatcher.backoff import after_attempt, parse_retry_after, retry_delay
from dispatcher.breaker import Breaker
from dispatcher.errors import RefusedAddress
from dispatcher.fold import Current, Intent, fold
from dispatcher.sender import GuardedResolver
from dispatcher.signing import headers
from dispatcher.throttle import QueuedProgress, plan
from inferhook.ssrf import address_allowed
from schemas.events import (
    OUT_OF_BAND_SEQUENCE,
    Completed,
    Created,
    EventData,
    EventType,
    Logs,
    Output,
    PredictionError,
    PredictionEvent,
    Started,
)
from schemas.status import FailureReason
from schemas.webhooks import DeliveryState
from store.accounts import new_secret, new_signing_key, public_key_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = "http://api.test"


def event(seq: int, event_type: EventType, data: EventData, pid: str = "p1") -> PredictionEvent:
    return PredictionEvent(id=f"{pid}-{seq}", source="test", type=event_type, time=T0,
                           subject=pid, sequence=seq, data=data)


def created(pid: str = "p1", webhook: str | None = "http://hooks.test/h",
            events: list[str] | None = None) -> PredictionEvent:
    return event(0, EventType.CREATED, Created(
        owner="alice", model="inferhook/digits", input={"x": 1}, webhook=webhook,
        webhook_events_filter=events if events is not None else ["start", "output", "logs",
                                                                 "completed"],
        created_at=T0), pid)


def done(seq: int, pid: str = "p1", output: Any = 7) -> PredictionEvent:
    return event(seq, EventType.SUCCEEDED, Completed(completed_at=T0, output=output), pid)


# --- fold -----------------------------------------------------------------------------------

def test_fold_applies_in_order_and_drops_duplicates_stale_and_after_terminal() -> None:
    rows: dict[str, Current] = {}
    events = [created(), event(1, EventType.STARTED, Started(started_at=T0)),
              event(3, EventType.LOGS, Logs(logs="a\n")),
              event(3, EventType.LOGS, Logs(logs="a\n")),          # duplicate
              event(2, EventType.LOGS, Logs(logs="stale\n")),      # stale
              done(5),
              event(6, EventType.LOGS, Logs(logs="late\n")),       # after the end
              event(OUT_OF_BAND_SEQUENCE, EventType.CANCELED, Completed(
                  completed_at=T0, error=PredictionError(reason=FailureReason.CANCELED_BY_USER,
                                                         message="x")))]
    folded = fold(rows, events, BASE)
    row = rows["p1"]
    assert row.status == "succeeded"
    assert row.logs == "a\n"
    assert row.output == 7
    assert row.expires_at == T0 + timedelta(hours=1)
    assert [h.sequence for h in folded.history] == [0, 1, 3, 5]
    assert folded.notifications() == ["p1:succeeded"]
    assert [i.event_type for i in folded.intents] == [EventType.CREATED, EventType.STARTED,
                                                      EventType.LOGS, EventType.SUCCEEDED]


def test_fold_out_of_band_outranks_executor_and_terminal_is_final() -> None:
    rows: dict[str, Current] = {}
    cancel = event(OUT_OF_BAND_SEQUENCE, EventType.CANCELED, Completed(
        completed_at=T0, error=PredictionError(reason=FailureReason.DEADLINE, message="late")))
    fold(rows, [created(), event(2, EventType.STARTED, Started(started_at=T0)), cancel,
                done(OUT_OF_BAND_SEQUENCE - 1)], BASE)
    assert rows["p1"].status == "canceled"
    assert rows["p1"].error == {"reason": "deadline", "message": "late"}


def test_fold_replay_changes_nothing() -> None:
    rows: dict[str, Current] = {}
    events = [created(), event(1, EventType.STARTED, Started(started_at=T0)), done(9)]
    fold(rows, events, BASE)
    for row in rows.values():
        row.changed, row.new = False, False
    again = fold(rows, events, BASE)
    assert again.changed == [] and again.intents == []
    assert [h.sequence for h in again.history] == [0]  # created: idempotent insert


def test_fold_filter_and_start_only_once() -> None:
    rows: dict[str, Current] = {}
    folded = fold(rows, [created(events=["start"]),
                         event(1, EventType.STARTED, Started(started_at=T0, phase="loading")),
                         event(2, EventType.STARTED, Started(started_at=T0, phase="running")),
                         event(3, EventType.OUTPUT, Output(output=1)), done(4)], BASE)
    # `start` once at create time (pending, as Replicate sends it) and once when it starts.
    assert [i.event_type for i in folded.intents] == [EventType.CREATED, EventType.STARTED,
                                                      EventType.SUCCEEDED]
    assert rows["p1"].phase == "running"


def test_fold_holds_events_of_unknown_predictions() -> None:
    folded = fold({}, [done(3, pid="ghost")], BASE)
    assert folded.history == [] and folded.intents == []
    assert [h.event.sequence for h in folded.park] == [3]


# --- throttle -------------------------------------------------------------------------------

def intent(seq: int, event_type: EventType, pid: str = "p1") -> Intent:
    return Intent(pid, "alice", "http://hooks.test/h", event_type, seq, f"{seq}".encode())


def test_progress_joins_the_untried_one_and_terminal_supersedes_it() -> None:
    result = plan([intent(3, EventType.OUTPUT), intent(4, EventType.OUTPUT),
                   intent(5, EventType.LOGS)], {}, T0, 0.5)
    assert [(d.intent.sequence, d.due) for d in result.inserts] == [(5, T0)]
    result = plan([intent(3, EventType.OUTPUT), intent(9, EventType.SUCCEEDED)], {}, T0, 0.5)
    assert [d.intent.sequence for d in result.inserts] == [9]
    assert result.supersede_progress == {"p1"}


def test_progress_is_spaced_after_one_already_tried() -> None:
    queued = {"p1": QueuedProgress(id=1, prediction_id="p1", scheduled_at=T0, untried=False)}
    result = plan([intent(4, EventType.OUTPUT)], queued, T0 + timedelta(seconds=0.1), 0.5)
    assert [d.due for d in result.inserts] == [T0 + timedelta(seconds=0.5)]
    queued = {"p1": QueuedProgress(id=1, prediction_id="p1", scheduled_at=T0, untried=True)}
    result = plan([intent(4, EventType.OUTPUT)], queued, T0, 0.5)
    assert result.inserts == [] and result.replace[1].sequence == 4


# --- backoff --------------------------------------------------------------------------------

def test_retry_delay_follows_schedule_with_bounded_jitter() -> None:
    schedule = [0, 5, 300]
    rng = random.Random(1)
    for _ in range(100):
        delay = retry_delay(1, schedule, rng=rng)
        assert delay is not None and 4.5 <= delay <= 5.5
    assert retry_delay(3, schedule) is None


def test_after_attempt_rules() -> None:
    common: dict[str, Any] = {"schedule": [0, 5, 300], "max_retry_after": 60.0,
                              "rng": random.Random(0)}
    assert after_attempt(ok=True, status=200, retry_after=None, attempts=1,
                         **common).state is DeliveryState.DELIVERED
    gone = after_attempt(ok=False, status=410, retry_after=None, attempts=1, **common)
    assert gone.state is DeliveryState.FAILED and gone.endpoint_gone
    honoured = after_attempt(ok=False, status=429, retry_after=30, attempts=1, **common)
    assert honoured.state is DeliveryState.PENDING and honoured.delay == 30
    clamped = after_attempt(ok=False, status=503, retry_after=86400, attempts=1, **common)
    assert clamped.delay == 60
    redirect = after_attempt(ok=False, status=301, retry_after=None, attempts=1, **common)
    assert redirect.state is DeliveryState.PENDING
    assert after_attempt(ok=False, status=500, retry_after=None, attempts=3,
                         **common).state is DeliveryState.FAILED


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", T0) == 60
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


# --- breaker --------------------------------------------------------------------------------

def test_breaker_opens_half_opens_and_closes() -> None:
    breaker = Breaker(failures=3, cooldown=10)
    for now in (0.0, 1.0):
        assert breaker.record(failed=True, now=now) is None
    assert breaker.record(failed=True, now=2.0) == 12.0
    assert breaker.room(8, now=5.0) == 0
    assert breaker.room(8, now=12.5) == 1          # half-open: one trial
    assert breaker.record(failed=True, now=13.0) == 33.0  # cooldown doubled
    assert breaker.record(failed=False, now=40.0) is None
    assert breaker.room(8, now=40.0) == 8


# --- signing --------------------------------------------------------------------------------

def test_signatures_verify_with_standardwebhooks_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"id":"p1","status":"succeeded"}'
    signed = headers([new, old], "msg_p1_9", int(datetime.now(UTC).timestamp()), body)
    assert len(signed["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, signed) == {"id": "p1", "status": "succeeded"}
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, signed)
    with pytest.raises(Exception, match="signature"):
        Webhook(new).verify(body + b" ", signed)


def test_ed25519_v1a_signature() -> None:
    key = new_signing_key()
    body = b'{"ok":true}'
    signed = headers([new_secret()], "msg_x_1", 1700000000, body, signing_key=key)
    v1a = [s for s in signed["webhook-signature"].split(" ") if s.startswith("v1a,")]
    assert len(v1a) == 1
    public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(public_key_of(key).removeprefix("whpk_")))
    public.verify(base64.b64decode(v1a[0][4:]), b"msg_x_1.1700000000." + body)


# --- SSRF -----------------------------------------------------------------------------------

LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize("address", [
    "127.0.0.2", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "224.0.0.1", "0.0.0.0", "fe80::1", "fd00:ec2::254", "::ffff:10.0.0.1",
    "::ffff:8.8.8.8", "64:ff9b::a00:1", "ff02::1"])
def test_refused_addresses(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), LOOPBACK_ONLY)


@pytest.mark.parametrize("address", ["127.0.0.1", "8.8.8.8", "2606:4700::1111"])
def test_allowed_addresses(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), LOOPBACK_ONLY)


class StubResolver(AbstractResolver):
    """Answers from a table; never asks DNS, never connects anywhere."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=address, port=port, family=0, proto=0,
                              flags=0) for address in self.table[host]]

    async def close(self) -> None:
        pass


async def test_guarded_resolver_refuses_private_answers_and_keeps_public_ones() -> None:
    stub = StubResolver({"internal.test": ["10.0.0.5"], "metadata.test": ["169.254.169.254"],
                         "mixed.test": ["10.0.0.5", "127.0.0.1"]})
    guarded = GuardedResolver(LOOPBACK_ONLY, stub)
    for host in ("internal.test", "metadata.test"):
        with pytest.raises(RefusedAddress):
            await guarded.resolve(host, 80)
    assert [r["host"] for r in await guarded.resolve("mixed.test", 80)] == ["127.0.0.1"]

"""Applying the endpoint health policy (dispatcher.health) after each batch of attempts.

In the outbox worker's recording transaction: lock the endpoints attempted, run each
attempt (oldest first) through the policy, store the result, disable where it says so
(queued deliveries become `skipped`) and queue its event to the owner's other endpoints.
After the commit the events also go onto the Kafka event topic (CloudEvents binary mode,
keyed and subjected by the endpoint id), best effort: Postgres holds the truth.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import orjson
from aiokafka import AIOKafkaProducer

from dispatcher.fanout import announce
from dispatcher.health import Health, after_attempt
from dispatcher.sender import Attempt
from inferhook.kafka import create_producer
from inferhook.settings import KafkaSettings, WebhookSettings
from schemas.endpoints import EndpointEvent, operational_body
from schemas.events import SPEC_VERSION, utcnow
from store import endpoints
from store.endpoints import EndpointRecord
from store.records import Connection

log = logging.getLogger(__name__)

SOURCE = "inferhook/dispatcher"


@dataclass(frozen=True)
class Notice:
    """An operational event to write to Kafka once its transaction committed."""

    endpoint_id: str
    type: EndpointEvent
    data: dict[str, object]
    msg_id: str
    """The event's id: its `webhook-id` at the owner's endpoints and its Kafka `ce_id`."""


class EndpointHealth:
    """Tracks failing spells of account endpoints; disables and announces."""

    def __init__(self, settings: WebhookSettings, kafka: KafkaSettings | None = None,
                 topic: str | None = None) -> None:
        self.disable_after = timedelta(seconds=settings.disable_after)
        self.kafka, self.topic = kafka, topic
        self.producer: AIOKafkaProducer | None = None

    async def lock(self, conn: Connection,
                   attempts: Sequence[tuple[str, Attempt]]) -> dict[str, EndpointRecord]:
        """Lock the endpoints attempted, before their deliveries are touched: the order the
        API's PATCH takes too (endpoint, then its deliveries)."""
        if not attempts:
            return {}
        return {r.id: r for r in await endpoints.lock_health(conn, {e for e, _ in attempts})}

    async def observe(self, conn: Connection, attempts: Sequence[tuple[str, Attempt]],
                      records: dict[str, EndpointRecord]) -> list[Notice]:
        """Update the health of the endpoints attempted (`records`, locked by `lock` in the
        caller's transaction)."""
        states = {r.id: Health(r.failing_since, r.warned, r.disabled_at is not None)
                  for r in records.values()}
        now, notices = utcnow(), []
        for endpoint_id, attempt in sorted(attempts, key=lambda a: a[1].started_at):
            if endpoint_id not in states:
                continue  # deleted meanwhile
            states[endpoint_id], event = after_attempt(
                states[endpoint_id], ok=attempt.ok, at=attempt.started_at, now=now,
                disable_after=self.disable_after)
            if event is not None:
                record = records[endpoint_id]
                data = operational_body(event.value, endpoint_id, record.url, now,
                                        states[endpoint_id].failing_since or record.failing_since)
                notices.append(Notice(endpoint_id, event, data, f"msg_{uuid.uuid4().hex}"))
                log.warning("endpoint %s (%s): %s", endpoint_id, record.url, event.value)
        for endpoint_id, health in states.items():
            record = records[endpoint_id]
            if (health.failing_since, health.warned) != (record.failing_since, record.warned):
                await endpoints.set_health(conn, endpoint_id, failing_since=health.failing_since,
                                           warned=health.warned)
        for notice in notices:
            record = records[notice.endpoint_id]
            if notice.type is EndpointEvent.DISABLED:
                await endpoints.set_disabled(conn, notice.endpoint_id, disabled=True,
                                             reason="every attempt failed for "
                                                    f"{self.disable_after.total_seconds():g}s")
            await announce(conn, record.owner, notice.type.value, notice.data,
                           about=notice.endpoint_id, msg_id=notice.msg_id)
        return notices

    async def publish(self, notices: Sequence[Notice]) -> None:
        """Write committed notices to the Kafka event topic (logged, not raised, on failure)."""
        if not notices or self.kafka is None or self.topic is None:
            return
        try:
            if self.producer is None:
                producer = create_producer(self.kafka, client_id="inferhook-endpoints")
                await producer.start()
                self.producer = producer
            for notice in notices:
                headers = [("ce_specversion", SPEC_VERSION.encode()),
                           ("ce_id", notice.msg_id.encode()),
                           ("ce_source", SOURCE.encode()), ("ce_type", notice.type.value.encode()),
                           ("ce_time", str(notice.data["time"]).encode()),
                           ("ce_subject", notice.endpoint_id.encode())]
                await self.producer.send_and_wait(self.topic, orjson.dumps(notice.data),
                                                  key=notice.endpoint_id.encode(),
                                                  headers=headers)
        except Exception:
            log.exception("writing %d endpoint events to Kafka failed", len(notices))

    async def close(self) -> None:
        """Stop the producer, if one was started."""
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

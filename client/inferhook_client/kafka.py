"""Read prediction events straight from Kafka (`pip install 'inferhook-client[kafka]'`).

Records on `inferhook.events` are CloudEvents 1.0 in binary mode: attributes in `ce_*`
headers (`ce_subject` is the prediction id, `ce_sequence` its sequence number), the data
as JSON in the value. Duplicates (a sequence at or below one already seen for the same
prediction) are dropped unless `dedupe=False`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from inferhook_client.models import Event

SPEC_VERSION = "1.0"
DEDUPE_MEMORY = 100_000
"""Predictions whose last sequence number is remembered for dropping duplicates."""


def decode_record(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> Event | None:
    """The event in one Kafka record; None when the record is not a CloudEvents 1.0 event."""
    attrs = {name: raw.decode("utf-8", "replace") for name, raw in headers}
    if attrs.get("ce_specversion") != SPEC_VERSION:
        return None
    try:
        data = json.loads(value) if value else {}
        return Event(sequence=int(attrs["ce_sequence"]), type=attrs["ce_type"],
                     time=datetime.fromisoformat(attrs["ce_time"]),
                     data=data if isinstance(data, dict) else {"value": data},
                     prediction_id=attrs.get("ce_subject"), id=attrs.get("ce_id"),
                     source=attrs.get("ce_source"))
    except (KeyError, ValueError):
        return None


class _Deduper:
    """Remembers the highest sequence seen per prediction (bounded, oldest forgotten first)."""

    def __init__(self, size: int = DEDUPE_MEMORY) -> None:
        self.size = size
        self.last: OrderedDict[str, int] = OrderedDict()

    def fresh(self, event: Event) -> bool:
        key = event.prediction_id or ""
        seen = self.last.get(key)
        if seen is not None and event.sequence <= seen:
            return False
        self.last[key] = event.sequence
        self.last.move_to_end(key)
        if len(self.last) > self.size:
            self.last.popitem(last=False)
        return True


async def iter_events(bootstrap: str, topic: str = "inferhook.events", *,
                      group_id: str | None = None, from_beginning: bool = False,
                      dedupe: bool = True, **consumer_options: Any) -> AsyncIterator[Event]:
    """Every prediction event published to `topic`, as it arrives.

    Without `group_id` nothing is committed and reading starts at the end (or the beginning
    with `from_beginning=True`); with one, offsets are committed as aiokafka's auto-commit
    does. Extra keyword arguments go to AIOKafkaConsumer.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None, **consumer_options)
    deduper = _Deduper() if dedupe else None
    await consumer.start()
    try:
        async for record in consumer:
            event = decode_record(list(record.headers or ()), record.value)
            if event is not None and (deduper is None or deduper.fresh(event)):
                yield event
    finally:
        await consumer.stop()

"""The dead-letter topic: request records no executor will serve, with why in headers.

Two kinds go there: records that are not a valid `created` event (reason `undecodable`)
and requests whose every attempt was lost to infrastructure (reason `infrastructure`,
the prediction failed with that reason). The record's value, key and headers are kept
as they were, so an operator can put it back on its request topic as is.

Headers added: `inferhook_reason` (machine-readable), `inferhook_error` (for a person),
`inferhook_topic` and `inferhook_offset` (where it was read), `inferhook_attempts` when
attempts were made.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord

log = logging.getLogger(__name__)

UNDECODABLE = "undecodable"
INFRASTRUCTURE = "infrastructure"


async def dead_letter(producer: AIOKafkaProducer, topic: str, record: ConsumerRecord[bytes, bytes],
                      *, reason: str, error: str, attempts: int | None = None) -> None:
    """Write `record` to the dead-letter `topic` with why; return once it is durable."""
    log.warning("dead-lettering %s@%d (%s): %s", record.topic, record.offset, reason, error)
    extra = [("inferhook_attempts", str(attempts).encode())] if attempts is not None else []
    await producer.send_and_wait(
        topic, record.value, key=record.key,
        headers=[*record.headers, ("inferhook_reason", reason.encode()),
                 ("inferhook_error", error.encode()),
                 ("inferhook_topic", record.topic.encode()),
                 ("inferhook_offset", str(record.offset).encode()), *extra])

"""Fan-out to account endpoints: every event of an owner's predictions that matches an
endpoint's filters becomes one outbox row to that endpoint, in the projection's transaction.

- One event keeps one `webhook-id` (schemas.webhooks.webhook_id) at every endpoint, as Svix
  does; the outbox is unique per (webhook-id, endpoint), so a replayed event adds nothing.
- The body is the prediction right after the event (`payload: full`), or `{id, type,
  status, urls}` (`thin`); a full body over `max_payload` bytes is sent thin, so a receiver
  with a body limit still gets every event.
- A disabled endpoint's rows are recorded `skipped` (never dropped): `recover` sends them.
- Operational events (`inferhook.endpoint.*`, `webhook.test`) go out the same way, through
  `announce`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dispatcher.fold import Published
from schemas.api import prediction_urls
from schemas.endpoints import Payload, matches, thin_body
from schemas.events import utcnow
from schemas.webhooks import webhook_id
from store import endpoints, outbox
from store.endpoints import EndpointRecord
from store.records import Connection

MAX_PAYLOAD_BYTES = 256 * 1024
"""Default size above which a full payload is sent thin (INFERHOOK_WEBHOOK_MAX_PAYLOAD_BYTES)."""


def body_for(event: Published, endpoint: EndpointRecord, base_url: str, max_payload: int) -> bytes:
    """What `endpoint` is sent for `event`: full, or thin when asked or over `max_payload`."""
    if endpoint.payload == Payload.FULL and len(event.body) <= max_payload:
        return event.body
    urls = prediction_urls(base_url, event.prediction_id).model_dump()
    return thin_body(event.prediction_id, event.event_type, event.status, urls)


def deliveries(events: Sequence[Published], owned: Sequence[EndpointRecord], base_url: str,
               max_payload: int, now: datetime) -> list[outbox.NewDelivery]:
    """The outbox rows for `events` (in event order) to the endpoints that match them."""
    by_owner: dict[str, list[EndpointRecord]] = {}
    for endpoint in owned:
        by_owner.setdefault(endpoint.owner, []).append(endpoint)
    rows = []
    for event in events:
        for endpoint in by_owner.get(event.owner, ()):
            if matches(event.event_type, event.model, event_types=endpoint.event_types,
                       models=endpoint.models):
                rows.append(outbox.NewDelivery(
                    webhook_id=webhook_id(event.prediction_id, event.sequence),
                    prediction_id=event.prediction_id, owner=event.owner, url=endpoint.url,
                    event_type=event.event_type, sequence=event.sequence,
                    body=body_for(event, endpoint, base_url, max_payload), due=now,
                    endpoint_id=endpoint.id, skipped=endpoint.disabled_at is not None))
    return rows


async def fanout(conn: Connection, events: Sequence[Published], *, base_url: str,
                 max_payload: int = MAX_PAYLOAD_BYTES) -> list[outbox.NewDelivery]:
    """The deliveries of `events` to their owners' endpoints, for the caller to queue in its
    transaction (the endpoints stay locked FOR SHARE until it ends)."""
    if not events:
        return []
    owned = await endpoints.of_owners(conn, sorted({e.owner for e in events}))
    return deliveries(events, owned, base_url, max_payload, utcnow())


async def announce(conn: Connection, owner: str, event_type: str, data: dict[str, object],
                   *, about: str, msg_id: str) -> None:
    """Send an operational event (webhook-id `msg_id` at every endpoint) to the owner's
    enabled endpoints that subscribe to it, other than the one it is `about`."""
    owned = await endpoints.of_owners(conn, [owner])
    await outbox.enqueue(conn, [
        endpoints.message(e, event_type, data, msg_id) for e in owned
        if e.id != about and e.disabled_at is None
        and matches(event_type, None, event_types=e.event_types, models=e.models)])

"""Projects batches of inferhook.events into Postgres with a fixed number of statements.

One Postgres transaction per batch: lock the touched predictions, their held events and
their queued progress webhooks (one statement, store.predictions LOCK), store binary
outputs as files and put references in their place (dispatcher.outfiles), fold the events
over them (dispatcher.fold), and write in one statement (APPLY) the changed rows, the
history, the webhook outbox's changes (dispatcher.throttle's plan and dispatcher.fanout's
rows), the events held for predictions not known yet, NOTIFY
`inferhook_prediction_changed` once per changed prediction, and the next offset of each
partition, so a batch is applied entirely or not at all, and exactly once. A batch is
BEGIN, LOCK, APPLY, COMMIT; files, new predictions' owners with account endpoints and
the fan-out's endpoints add a read each when the batch has them. Every statement takes the
whole batch as one JSON array or a few arrays; none runs per event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.fanout import MAX_PAYLOAD_BYTES, fanout
from dispatcher.fold import PROGRESS, Current, Folded, Held, fold
from dispatcher.outfiles import externalize
from dispatcher.queueplace import fill_queue_places
from dispatcher.throttle import Plan, QueuedProgress, plan
from inferhook.filelinks import FileLinks
from schemas.events import Created, EventType, PredictionEvent, utcnow
from schemas.status import TERMINAL
from store import endpoints, outbox, parked, predictions
from store.files import FileStore
from store.records import Connection

log = logging.getLogger(__name__)

PROGRESS_TYPES = sorted(t.value for t in PROGRESS)
_TERMINAL_STATUS = {t.value: t.status.value for t in EventType if t.status in TERMINAL}


@dataclass(frozen=True)
class Applied:
    """What one batch did that the caller acts on after the commit."""

    completed: tuple[tuple[str, str], ...] = ()
    """(model, status) of each prediction this batch made terminal (for metrics, once committed)."""


async def project_batch(conn: Connection, events: Sequence[PredictionEvent],
                        offsets: dict[tuple[str, int], int], *, files: FileStore,
                        links: FileLinks, progress_interval: float,
                        raw: Sequence[bytes] | None = None,
                        max_payload: int = MAX_PAYLOAD_BYTES) -> Applied:
    """Apply `events` (arrival order) and store `offsets` inside the caller's transaction.

    `raw` optionally carries each event's data as it came from Kafka (see fold). Binary
    outputs go to `files`, referenced by `links` (whose base URL is also the API's).
    """
    ids = sorted({e.subject for e in events})
    locked = await predictions.lock(conn, ids, progress_types=PROGRESS_TYPES,
                                    window=progress_interval + 1.0)
    rows = {row["id"]: Current(**row) for row in locked.rows}
    held = {pid: [Held(PredictionEvent.decode([(n, v.encode()) for n, v in headers], value),
                       value) for headers, value in events_of]
            for pid, events_of in locked.held.items()}
    batch = externalize(rows, events, raw, held, links)
    await files.put(conn, batch.files)
    subscribed = await endpoints.owners_with_endpoints(conn, [
        e.data.owner for e in batch.events if isinstance(e.data, Created) and e.subject not in rows])
    folded = fold(rows, batch.events, links.base_url, batch.raw, batch.held,
                  subscribed=frozenset(subscribed))
    changed = folded.changed
    queued = {pid: QueuedProgress(**row) for pid, row in locked.queued.items()}
    if folded.intents:
        await fill_queue_places(conn, folded, utcnow())
    fanned = await fanout(conn, folded.published, base_url=links.base_url,
                          max_payload=max_payload)
    # NOTIFY is delivered when the transaction commits: waiting clients (Prefer: wait,
    # streams, the account event feed) wake then.
    await predictions.apply(
        conn, new=[r.values(whole=True) for r in changed if r.new],
        existing=[r.values(whole=False) for r in changed if not r.new], history=folded.history,
        notifications=[*folded.notifications(), *folded.feed_notices()], offsets=offsets,
        held=parked.Writes(park=[(h.event.subject, h.event.sequence,
                                  [[n, v.decode()] for n, v in h.event.headers()], h.raw)
                                 for h in folded.park], unpark=sorted(folded.unpark)),
        outbox=_outbox_writes(folded, queued, progress_interval, fanned))
    completed = tuple((folded.rows[h.prediction_id].model, _TERMINAL_STATUS[h.type])
                      for h in folded.history if h.type in _TERMINAL_STATUS)
    return Applied(completed)


def _outbox_writes(folded: Folded, queued: dict[str, QueuedProgress], interval: float,
                   fanned: list[outbox.NewDelivery]) -> outbox.Writes:
    """The prediction webhooks' plan (dispatcher.throttle) and the fan-out's rows."""
    deliveries: Plan = plan(folded.intents, queued, utcnow(), interval)
    return outbox.Writes(
        retrying=sorted(deliveries.supersede_retrying),
        progress_of=sorted(deliveries.supersede_progress), progress_types=PROGRESS_TYPES,
        replacements={row_id: (i.webhook_id, i.sequence, i.event_type.value, i.body)
                      for row_id, i in deliveries.replace.items()},
        deliveries=[*(outbox.NewDelivery(
            webhook_id=d.intent.webhook_id, prediction_id=d.intent.prediction_id,
            owner=d.intent.owner, url=d.intent.url, event_type=d.intent.event_type.value,
            sequence=d.intent.sequence, body=d.intent.body, due=d.due)
            for d in deliveries.inserts), *fanned])

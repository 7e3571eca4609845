"""Which webhook intents become outbox rows: a pure plan over what the outbox already holds.

- `output`/`logs` webhooks of one prediction go out at most every `interval` seconds. A new
  one joins (replaces the body of) a queued one that has not been tried yet, so the last
  state always goes out and nothing piles up.
- A terminal webhook makes queued, untried `output`/`logs` webhooks of its prediction moot
  (its body carries the final output and logs), so they are superseded.
- Any new webhook supersedes older non-terminal ones of its prediction that are waiting to
  be retried: one prediction's webhooks go out in sequence order, and a stale state must not
  hold a newer one back for hours. Terminal webhooks are never superseded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatcher.fold import Intent


@dataclass(frozen=True)
class QueuedProgress:
    """The newest `output`/`logs` row of a prediction already in the outbox."""

    id: int
    prediction_id: str
    scheduled_at: datetime
    untried: bool
    """Pending, never attempted and not claimed: its body may still be replaced."""


@dataclass(frozen=True)
class NewDelivery:
    """A row to insert, first due at `due`."""

    intent: Intent
    due: datetime


@dataclass
class Plan:
    """Statements one batch needs against the outbox."""

    inserts: list[NewDelivery] = field(default_factory=list)
    replace: dict[int, Intent] = field(default_factory=dict)
    """Outbox row id → the newer intent whose body (and id and sequence) it takes."""
    supersede_retrying: set[str] = field(default_factory=set)
    """Predictions whose non-terminal rows waiting for a retry are superseded."""
    supersede_progress: set[str] = field(default_factory=set)
    """Predictions whose untried output/logs rows are superseded (a terminal one came)."""


@dataclass
class _Slot:
    scheduled_at: datetime
    row_id: int | None = None
    insert_index: int | None = None
    untried: bool = True


def plan(intents: list[Intent], queued: dict[str, QueuedProgress], now: datetime,
         interval: float) -> Plan:
    """The outbox changes for `intents` (in event order), given the queued progress rows."""
    result = Plan()
    slots = {pid: _Slot(q.scheduled_at, row_id=q.id, untried=q.untried)
             for pid, q in queued.items()}
    dropped: set[int] = set()
    spacing = timedelta(seconds=interval)
    for intent in intents:
        pid = intent.prediction_id
        slot = slots.get(pid)
        if intent.progress:
            if slot is not None and slot.untried:
                if slot.insert_index is not None:
                    old = result.inserts[slot.insert_index]
                    result.inserts[slot.insert_index] = NewDelivery(intent, old.due)
                elif slot.row_id is not None:
                    result.replace[slot.row_id] = intent
                continue
            due = max(now, slot.scheduled_at + spacing) if slot is not None else now
            result.inserts.append(NewDelivery(intent, due))
            slots[pid] = _Slot(due, insert_index=len(result.inserts) - 1)
        else:
            if intent.terminal:
                result.supersede_progress.add(pid)
                if slot is not None:
                    if slot.insert_index is not None and slot.untried:
                        dropped.add(slot.insert_index)
                    if slot.row_id is not None:
                        result.replace.pop(slot.row_id, None)
                    slot.untried = False
            result.inserts.append(NewDelivery(intent, now))
        result.supersede_retrying.add(pid)
    result.inserts = [d for i, d in enumerate(result.inserts) if i not in dropped]
    return result

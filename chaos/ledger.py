"""The ledger: what became of every accepted prediction.

For each id that got a 201 (or the replayed 200): terminal in GET; its terminal webhook
delivered (answered 2xx) and verified; one outcome (every terminal webhook and the GET agree
on status and output); one event per webhook-id (a webhook-id never carries two statuses or
two predictions) and one webhook-id per terminal event. A webhook-id delivered more than once
after a 2xx is a duplicate, which at-least-once delivery allows: reported, not a failure.
`verdict` is the rule, a pure function; `drain` gathers the GETs it needs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.api import Api
from chaos.receiver import Delivery, output_digest

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
LISTED = 200
"""Ids listed per finding in the report (the counts are always whole)."""


@dataclass(frozen=True)
class Outcome:
    """A terminal state as one source saw it."""

    status: str
    output: str
    """`output_digest` of the output."""


@dataclass
class Ledger:
    """The findings; every list holds the offending ids (or webhook-ids) with details."""

    accepted: int
    not_terminal: list[dict[str, str]] = field(default_factory=list)
    no_verified_terminal_webhook: list[str] = field(default_factory=list)
    conflicting_outcomes: list[dict[str, Any]] = field(default_factory=list)
    webhook_id_conflicts: list[dict[str, Any]] = field(default_factory=list)
    several_terminal_webhook_ids: list[dict[str, Any]] = field(default_factory=list)
    duplicate_deliveries: int = 0
    duplicate_examples: list[dict[str, Any]] = field(default_factory=list)
    deliveries_for_unknown_ids: int = 0

    @property
    def lost(self) -> int:
        """Accepted ids not terminal in GET or without a verified terminal webhook."""
        ids = {row["id"] for row in self.not_terminal} | set(self.no_verified_terminal_webhook)
        return len(ids)

    @property
    def conflicts(self) -> int:
        """Contradictions: two outcomes of one prediction, or webhook-ids not one-to-one with events."""
        return (len(self.conflicting_outcomes) + len(self.webhook_id_conflicts)
                + len(self.several_terminal_webhook_ids))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "lost": {"total": self.lost, "not_terminal": len(self.not_terminal),
                     "no_verified_terminal_webhook": len(self.no_verified_terminal_webhook),
                     "not_terminal_ids": self.not_terminal[:LISTED],
                     "no_verified_terminal_webhook_ids": self.no_verified_terminal_webhook[:LISTED]},
            "conflicting_outcomes": {
                "total": self.conflicts,
                "outcomes": len(self.conflicting_outcomes),
                "webhook_id_with_several_events": len(self.webhook_id_conflicts),
                "terminal_event_with_several_webhook_ids": len(self.several_terminal_webhook_ids),
                "examples": (self.conflicting_outcomes + self.webhook_id_conflicts
                             + self.several_terminal_webhook_ids)[:LISTED]},
            "duplicate_deliveries": {"total": self.duplicate_deliveries,
                                     "examples": self.duplicate_examples[:20]},
            "deliveries_for_unknown_ids": self.deliveries_for_unknown_ids,
        }


def verdict(accepted: Iterable[str], gets: dict[str, Outcome | str],
            deliveries: Iterable[Delivery]) -> Ledger:
    """Judge every accepted id. `gets` maps an id to its terminal outcome in GET, or to the last
    non-terminal status (or error) seen; `deliveries` are the receiver's verified ones."""
    ids = list(dict.fromkeys(accepted))
    known = set(ids)
    ledger = Ledger(accepted=len(ids))
    by_prediction: dict[str, list[Delivery]] = defaultdict(list)
    by_webhook_id: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.prediction_id not in known:
            ledger.deliveries_for_unknown_ids += 1
        by_prediction[delivery.prediction_id].append(delivery)
        by_webhook_id[delivery.webhook_id].append(delivery)
    for prediction_id in ids:
        seen = gets.get(prediction_id, "never read")
        if not isinstance(seen, Outcome):
            ledger.not_terminal.append({"id": prediction_id, "status": seen})
        terminal = [d for d in by_prediction[prediction_id] if d.status in TERMINAL]
        if not any(200 <= d.answered < 300 for d in terminal):
            ledger.no_verified_terminal_webhook.append(prediction_id)
        outcomes = {Outcome(d.status, d.output) for d in terminal}
        if isinstance(seen, Outcome):
            outcomes.add(seen)
        if len(outcomes) > 1:
            ledger.conflicting_outcomes.append({
                "id": prediction_id, "outcomes": sorted(f"{o.status}:{o.output}" for o in outcomes)})
        webhook_ids = sorted({d.webhook_id for d in terminal})
        if len(webhook_ids) > 1:
            ledger.several_terminal_webhook_ids.append({"id": prediction_id, "webhook_ids": webhook_ids})
    for webhook_id, attempts in by_webhook_id.items():
        events = sorted({f"{d.prediction_id}:{d.status}" for d in attempts})
        if len(events) > 1:
            ledger.webhook_id_conflicts.append({"webhook_id": webhook_id, "events": events})
        answered_ok = [d for d in attempts if 200 <= d.answered < 300]
        if len(answered_ok) > 1:
            ledger.duplicate_deliveries += len(answered_ok) - 1
            ledger.duplicate_examples.append({"webhook_id": webhook_id, "id": attempts[0].prediction_id,
                                              "delivered": len(answered_ok)})
    return ledger


def delivered(deliveries: Iterable[Delivery]) -> set[str]:
    """Ids whose terminal webhook was verified and answered 2xx."""
    return {d.prediction_id for d in deliveries if d.status in TERMINAL and 200 <= d.answered < 300}


async def drain(api: Api, ids: list[str], deliveries: Callable[[], list[Delivery]],
                clock: Callable[[], float], deadline: float,
                concurrency: int = 8) -> dict[str, Outcome | str]:
    """GET every id until all are terminal in GET and have their terminal webhook, or until
    `deadline` on `clock`. A terminal GET is final, so each id is read terminal once."""
    gets: dict[str, Outcome | str] = {}
    gate = asyncio.Semaphore(concurrency)

    async def read(prediction_id: str) -> None:
        async with gate:
            answer = await api.get(prediction_id)
        body = answer.body if isinstance(answer.body, dict) else {}
        status = body.get("status")
        if answer.status == 200 and status in TERMINAL:
            gets[prediction_id] = Outcome(str(status), output_digest(body.get("output")))
        else:
            gets[prediction_id] = (str(status) if answer.status == 200
                                   else f"GET {answer.status or answer.error}")

    while True:
        todo = [i for i in ids if not isinstance(gets.get(i), Outcome)]
        await asyncio.gather(*(read(i) for i in todo))
        pending = [i for i in ids if not isinstance(gets.get(i), Outcome)]
        if (not pending and set(ids) <= delivered(deliveries())) or clock() >= deadline:
            return gets
        await asyncio.sleep(1.0)

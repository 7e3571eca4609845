"""Where one prediction's time goes: the points it passes on its way from the client's
request to its webhook, each read from a clock that something already records, and the
hops between them.

    submitted   the load generator's scheduled send time (its clock)
    accepted    predictions.created_at: ingest took the request, before its Kafka writes
    answered    the 201 at the load generator (off the webhook's path)
    queued      the broker's append time of the request on the model's request topic
                (ingest writes it once `created` is acknowledged on the events topic)
    (request consumed by the executor: no service records it; see MISSING)
    started     predictions.started_at: the executor starts the run (`started` event)
    succeeded   predictions.completed_at: the outcome event is built, after the
                `started` event is acknowledged by Kafka
    emitted     the broker's append time of the outcome on the events topic
    projecting  webhook_deliveries.created_at: now() of the dispatcher's projection
                transaction, i.e. when it began
    projected   that transaction's commit time (PostgreSQL's commit timestamp of the
                prediction_events row of the outcome; needs track_commit_timestamp)
    attempted   webhook_attempts.started_at of the first attempt (the dispatcher, just
                before it sends)
    received    the receiver's clock when the webhook came in

Every clock is the same machine's wall clock. The two append times need the topics to
stamp records with LogAppendTime (a topic setting the hops benchmark makes for its runs:
no service reads those timestamps); they are milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import percentile_ms

MISSING = ("request consumed: no service records when the executor takes a request from "
           "Kafka, so `request in Kafka → started` holds both the executor's fetch and its "
           "batching wait. It would be taken in executors/serving.py, RequestServer.serve, "
           "where the Job is made (Job.__init__: `consumed_at = utcnow()`), and carried in "
           "the `started` event (a `consumed_at` field of schemas.events.Started, or "
           "queue_time split into metrics `kafka_time` and `batch_wait`), which the "
           "projection keeps in predictions.metrics.")


@dataclass(frozen=True)
class Timeline:
    """When one prediction passed each point, in wall-clock seconds (None: not recorded)."""

    submitted: float
    accepted: float | None
    answered: float | None
    queued: float | None
    started: float | None
    succeeded: float | None
    emitted: float | None
    projecting: float | None
    projected: float | None
    attempted: float | None
    received: float | None
    predict_time: float | None = None
    """The model's own run time, as the executor measured it (inside started → succeeded)."""


@dataclass(frozen=True)
class Hop:
    """The time from one point of a Timeline to another."""

    name: str
    start: str
    end: str

    def seconds(self, timeline: Timeline) -> float | None:
        """end - start for this prediction; None when either is not recorded."""
        start, end = getattr(timeline, self.start), getattr(timeline, self.end)
        return None if start is None or end is None else float(end - start)


PATH = (
    Hop("submit → accepted", "submitted", "accepted"),
    Hop("accepted → request in Kafka", "accepted", "queued"),
    Hop("request in Kafka → started", "queued", "started"),
    Hop("started → succeeded", "started", "succeeded"),
    Hop("succeeded → outcome in Kafka", "succeeded", "emitted"),
    Hop("outcome in Kafka → projection began", "emitted", "projecting"),
    Hop("projection began → projected", "projecting", "projected"),
    Hop("projected → first delivery attempt", "projected", "attempted"),
    Hop("first delivery attempt → received", "attempted", "received"),
)
"""The webhook's path, in order: its hops add up to submit → received."""
ANSWER = Hop("accepted → 201 at the client", "accepted", "answered")
TOTAL = Hop("submit → received", "submitted", "received")


@dataclass(frozen=True)
class Spread:
    """Percentiles of one hop over many predictions, in milliseconds."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None


def spread(values: Sequence[float | None]) -> Spread:
    """Percentiles of the recorded values (None ones left out)."""
    known = [v for v in values if v is not None]
    return Spread(len(known), percentile_ms(known, 50), percentile_ms(known, 90),
                  percentile_ms(known, 99))


def breakdown(timelines: Sequence[Timeline]) -> dict[str, Spread]:
    """Each hop's spread (path, then the 201, the total and predict_time), by hop name."""
    hops = {hop.name: spread([hop.seconds(t) for t in timelines])
            for hop in (*PATH, ANSWER, TOTAL)}
    hops["predict_time (inside started → succeeded)"] = spread(
        [t.predict_time for t in timelines])
    return hops


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(by_rate: dict[float, dict[str, Spread]]) -> str:
    """A Markdown table: one row per hop, p50 / p90 / p99 (ms) per rate."""
    rates = list(by_rate)
    head = "| hop | " + " | ".join(f"{r:g}/s p50 | p90 | p99" for r in rates) + " |"
    lines = [head, "|---|" + "---|---|---|" * len(rates)]
    for name in next(iter(by_rate.values()), {}):
        cells = " | ".join(f"{_ms(s.p50)} | {_ms(s.p90)} | {_ms(s.p99)}"
                           for s in (by_rate[r][name] for r in rates))
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)

"""What one chaos run does: the scenario, the load and the faults, as one documented dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scenario = Literal["single", "cluster"]
FaultKind = Literal["executor", "dispatcher", "ingest", "broker", "postgres"]
FAULT_KINDS: tuple[FaultKind, ...] = ("executor", "dispatcher", "ingest", "broker", "postgres")


def default_faults(scenario: Scenario) -> dict[FaultKind, int]:
    """The issue's schedule: executor 3 times, dispatcher 3, ingest 2, Postgres 1, and each
    broker once (one broker in `single`, three in `cluster`)."""
    return {"executor": 3, "dispatcher": 3, "ingest": 2,
            "broker": 1 if scenario == "single" else 3, "postgres": 1}


def parse_faults(text: str, scenario: Scenario) -> dict[FaultKind, int]:
    """`executor=1,broker=0`: counts that replace the defaults for the kinds named."""
    counts = default_faults(scenario)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in FAULT_KINDS or not value.isdigit():
            raise ValueError(f"bad fault count {part!r}: use kind=N with kind in {', '.join(FAULT_KINDS)}")
        counts[name] = int(value)
    return counts


@dataclass
class RunConfig:
    """One chaos run. Times are seconds."""

    scenario: Scenario = "single"
    """`single`: one Kafka broker; `cluster`: three brokers, topics with replication factor 3."""
    duration: float = 120.0
    """How long creates are sent (open loop)."""
    rate: float = 40.0
    """Creates per second, each due at start + i / rate whatever happened to earlier ones."""
    seed: int = 1
    """Seeds the fault order and which deliveries the receiver fails."""
    faults: dict[FaultKind, int] = field(default_factory=lambda: default_faults("single"))
    """How many times each fault happens; broker faults cycle over the brokers."""
    fault_window: tuple[float, float] = (0.08, 0.8)
    """Faults are spread evenly over this part of `duration` (fractions), in seeded random order."""
    outage: float = 3.0
    """How long a killed broker or a stopped PostgreSQL stays down before it is started again."""
    drain: float = 120.0
    """After the load: the longest wait for every accepted prediction to be terminal and pushed."""
    recover_timeout: float = 240.0
    """Longest wait for a fault's probe prediction; past it the fault counts as not recovered."""
    create_give_up: float = 120.0
    """A create still failing (connection error, 5xx, 409 in flight) this long after it was due
    is given up: never accepted, so not in the ledger, but counted."""
    fail_one_in: int = 10
    """The receiver answers 500 to about one delivery attempt in this many."""
    events_filter: tuple[str, ...] = ("start", "completed")
    """`webhook_events_filter` of every create: the terminal webhook plus one earlier event."""
    retry_schedule: str = "0,0.5,1,2,4,8"
    """INFERHOOK_WEBHOOK_RETRY_SCHEDULE of the dispatcher: short, so the drain sees every retry."""
    spin_ms: float = 20.0
    """Every other create goes to inferhook/spin computing this long; the rest to inferhook/digits."""
    results_dir: str = "chaos/results"
    """Where the JSON goes, relative to the repository root."""

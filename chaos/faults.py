"""The faults of a run: a seeded schedule, their injection, and the time to recover from each.

Time to recover (`recovered_after`) is measured from the moment a fault is injected until a
probe prediction, created right then (and retried with its Idempotency-Key while refused),
reads terminal in GET: the whole path create → Kafka → executor → events → dispatcher →
PostgreSQL works again. `ready_after` is until ingest's /readyz first answers 200 once the
fault is repaired; `repaired_after` until the killed process or server was started again
(servers: serving again).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chaos.api import Api
from chaos.config import FAULT_KINDS, FaultKind, RunConfig
from chaos.load import Load
from chaos.services import Supervisor
from chaos.stack import ChaosStack

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
PROBE_MODEL = "inferhook/digits"


@dataclass(frozen=True)
class Fault:
    """One planned fault."""

    kind: FaultKind
    target: int
    """Which broker (0 unless `kind` is broker)."""
    at: float
    """Seconds after the load started."""

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.target}" if self.kind == "broker" else self.kind


def schedule(counts: dict[FaultKind, int], duration: float, window: tuple[float, float],
             seed: int, brokers: int) -> list[Fault]:
    """The faults in a seeded random order, evenly spaced over `window` (fractions of
    `duration`); broker faults go round the brokers, so each is hit once `counts` ≥ brokers."""
    kinds = [kind for kind in FAULT_KINDS for _ in range(counts.get(kind, 0))]
    random.Random(seed).shuffle(kinds)
    lo, hi = window[0] * duration, window[1] * duration
    step = (hi - lo) / (len(kinds) - 1) if len(kinds) > 1 else 0.0
    faults, next_broker = [], 0
    for i, kind in enumerate(kinds):
        target = 0
        if kind == "broker":
            target, next_broker = next_broker % brokers, next_broker + 1
        faults.append(Fault(kind=kind, target=target, at=round(lo + i * step, 2)))
    return faults


@dataclass
class FaultRecord:
    """What happened when a fault was injected (seconds on the run's clock)."""

    kind: FaultKind
    target: int
    label: str
    scheduled_at: float
    injected_at: float | None = None
    repaired_after: float | None = None
    ready_after: float | None = None
    recovered_after: float | None = None
    probe_id: str | None = None
    probe_started_after: float | None = None
    """The probe's own `started_at - created_at` (its time in the queue), from GET."""
    probe_completed_after: float | None = None
    """The probe's `completed_at - created_at`; much less than `recovered_after` minus the
    create's retries means the delay was in projecting it, not in running it."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


class Injector:
    """Injects the scheduled faults one after another (a fault waits for the previous one's
    repair) and measures recovery from each in the background."""

    def __init__(self, stack: ChaosStack, supervisor: Supervisor, load: Load, api: Api,
                 clock: Callable[[], float], config: RunConfig) -> None:
        self.stack, self.supervisor, self.load, self.api = stack, supervisor, load, api
        self.clock, self.config = clock, config
        self.records: list[FaultRecord] = []
        self._probes: list[asyncio.Task[None]] = []

    async def run(self, faults: list[Fault]) -> None:
        """Inject every fault at (or after) its time; return once all are repaired."""
        for fault in faults:
            record = FaultRecord(kind=fault.kind, target=fault.target, label=fault.label,
                                 scheduled_at=fault.at)
            self.records.append(record)
            await asyncio.sleep(max(0.0, fault.at - self.clock()))
            record.injected_at = injected = self.clock()
            self._probes.append(asyncio.create_task(self._probe(record, injected)))
            try:
                await self._inject(fault)
            except Exception as exc:  # reported; the run goes on with what still works
                record.error = f"{type(exc).__name__}: {exc}"[:2000]
            record.repaired_after = self.clock() - injected
            self._probes.append(asyncio.create_task(self._readiness(record, injected)))

    async def recovered(self) -> None:
        """Wait for every probe (each bounded by `recover_timeout`)."""
        await asyncio.gather(*self._probes, return_exceptions=True)

    async def cancel(self) -> None:
        """Stop the probes still waiting (the run is ending early)."""
        for task in self._probes:
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)

    async def _inject(self, fault: Fault) -> None:
        outage = self.config.outage
        if fault.kind == "broker":
            brokers = self.stack.brokers
            await asyncio.to_thread(brokers.kill, fault.target)
            await asyncio.sleep(outage)
            await self._retry_start(lambda: brokers.start_node(fault.target))
        elif fault.kind == "postgres":
            postgres = self.stack.postgres
            await asyncio.to_thread(postgres.stop, immediate=True)
            await asyncio.sleep(outage)
            await self._retry_start(postgres.start)
        else:
            service = self.stack.services[fault.kind]
            service.busy = True
            try:
                await service.kill()
                self.supervisor.harness_restarted(service.name)
                service.start(note="restart after a chaos SIGKILL")
            finally:
                service.busy = False

    async def _retry_start(self, start: Callable[[], None], tries: int = 3) -> None:
        """Start a server again; a failed start is tried again (its error kept if all fail)."""
        for attempt in range(tries):
            try:
                await asyncio.to_thread(start)
                return
            except Exception:
                if attempt == tries - 1:
                    raise
                await asyncio.sleep(5.0)

    async def _probe(self, record: FaultRecord, injected: float) -> None:
        deadline = injected + self.config.recover_timeout
        create = self.load.new(PROBE_MODEL, probe_for=record.label)
        await self.load.spawn(create)  # tracked by the load, so its id is in the ledger
        record.probe_id = create.prediction_id
        while record.probe_id is not None and self.clock() < deadline:
            answer = await self.api.get(record.probe_id)
            if isinstance(answer.body, dict) and answer.body.get("status") in TERMINAL:
                record.recovered_after = self.clock() - injected
                record.probe_started_after = _since_created(answer.body, "started_at")
                record.probe_completed_after = _since_created(answer.body, "completed_at")
                return
            await asyncio.sleep(0.25)

    async def _readiness(self, record: FaultRecord, injected: float) -> None:
        deadline = injected + self.config.recover_timeout
        while self.clock() < deadline:
            if await self.api.ready():
                record.ready_after = self.clock() - injected
                return
            await asyncio.sleep(0.25)


def _since_created(prediction: dict[str, Any], field: str) -> float | None:
    """Seconds from the prediction's `created_at` to `field` (both ISO 8601), if both are set."""
    if not prediction.get(field) or not prediction.get("created_at"):
        return None
    return (datetime.fromisoformat(prediction[field])
            - datetime.fromisoformat(prediction["created_at"])).total_seconds()

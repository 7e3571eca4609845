"""One chaos run, start to finish: stack up, warm-up, load with faults, drain, ledger, report.

Whatever happens (a fault that breaks the stack, an exception, Ctrl-C, SIGTERM) every process
and server the run started is stopped and the JSON is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chaos import report as reports
from chaos.api import Api
from chaos.config import RunConfig
from chaos.faults import TERMINAL, Injector, schedule
from chaos.ledger import Outcome, drain, verdict
from chaos.load import Load
from chaos.receiver import Receiver
from chaos.services import Supervisor
from chaos.stack import MODELS, STATE, ChaosStack

READY_TIMEOUT = 180.0
"""Longest wait for a fresh stack: ingest ready and one prediction per model done."""


class Clock:
    """Seconds since `reset` (the start of the load), on the monotonic clock."""

    def __init__(self) -> None:
        self.zero = time.monotonic()

    def reset(self) -> None:
        self.zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.zero


async def wait_ready(api: Api, load: Load) -> None:
    """Until /readyz answers 200 and one prediction of each model is terminal (models loaded,
    topics created, consumer groups joined), or raise after READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not await api.ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest not ready within {READY_TIMEOUT:.0f}s")
        await asyncio.sleep(0.5)
    warm = [load.new(model, probe_for="warm-up") for model in MODELS]
    await asyncio.gather(*(load.send(c) for c in warm))
    for create in warm:
        while True:
            if create.prediction_id is not None:
                answer = await api.get(create.prediction_id)
                if isinstance(answer.body, dict) and answer.body.get("status") in TERMINAL:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up {create.model} not done within {READY_TIMEOUT:.0f}s "
                                   f"(id {create.prediction_id}, last answer {create.last_answer})")
            await asyncio.sleep(0.5)


def bodies(config: RunConfig, examples: dict[str, dict[str, Any]], webhook: str) -> dict[str, dict[str, Any]]:
    """The create body per model: its input, the receiver as webhook, the events filter."""
    inputs = {**examples, "inferhook/spin": {"milliseconds": config.spin_ms}}
    return {model: {"model": model, "input": inputs[model], "webhook": webhook,
                    "webhook_events_filter": list(config.events_filter)} for model in MODELS}


@dataclass
class Parts:
    """What a run has started so far: all of it is stopped and reported, however the run ends."""

    stack: ChaosStack | None = None
    receiver: Receiver | None = None
    load: Load | None = None
    injector: Injector | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop_tasks(self) -> None:
        """Cancel the supervisor, the fault injection, the probes and the creates in flight."""
        for task in self.background:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self.background, return_exceptions=True)
            if self.injector is not None:
                await self.injector.cancel()
            if self.load is not None:
                await self.load.cancel()


async def run_once(config: RunConfig, name: str | None = None, state: Path = STATE) -> dict[str, Any]:
    """Run one scenario and return its report (also written to `config.results_dir`); its
    servers and logs live in `state/<name>` (default: the scenario), wiped at start."""
    timestamp = time.strftime("%Y%m%dT%H%M%S")
    report: dict[str, Any] = {
        "scenario": config.scenario, "seed": config.seed, "timestamp": timestamp,
        "duration": config.duration, "rate": config.rate, "ok": False, "error": None,
        "config": {**vars(config), "faults": dict(config.faults)},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "recovery_measure": "recovered_after: seconds from a fault's injection until a probe "
                            "prediction created right then (retried with its Idempotency-Key) "
                            "reads terminal in GET; ready_after: until /readyz answers 200 after "
                            "the repair; repaired_after: until the process or server was back",
    }
    parts = Parts()
    try:
        parts.stack = stack = ChaosStack.create(name or config.scenario, config, state)
        report["state_dir"] = str(stack.root)
        await stack.start()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000)) as session:
            try:
                await _exercise(config, parts, Api(session, stack.base_url, stack.key),
                                f"{name or config.scenario}-{timestamp}", report)
            finally:  # before the session closes: nothing may still be using it
                await parts.stop_tasks()
    except Exception as exc:  # the run failed: reported as such, the next run may still go
        _error(report, exc)
    except BaseException as exc:  # Ctrl-C, SIGTERM (cancelled): clean up, report, stop
        _error(report, exc)
        raise
    finally:
        await parts.stop_tasks()
        if parts.receiver is not None:
            with contextlib.suppress(Exception):
                await parts.receiver.stop()
        if parts.stack is not None:
            parts.stack.stop()
            _finish(report, parts)
        report["file"] = str(reports.write(report, config.results_dir))
    return report


async def _exercise(config: RunConfig, parts: Parts, api: Api, run_name: str,
                    report: dict[str, Any]) -> None:
    """Warm up, send the load while the faults happen, drain, and judge (into `report`)."""
    stack = parts.stack
    if stack is None:
        raise RuntimeError("the stack must be started first")
    clock = Clock()
    supervisor = Supervisor(stack.services, clock.now)
    parts.background.append(asyncio.create_task(supervisor.watch()))
    parts.receiver = receiver = Receiver(await _when_ready(api.webhook_secret), config.seed,
                                         config.fail_one_in, clock=clock.now)
    await receiver.start()
    examples = {m: await api.example_input(m) for m in MODELS if m != "inferhook/spin"}
    parts.load = load = Load(api, bodies(config, examples, receiver.url), clock.now,
                             run_name=run_name, give_up=config.create_give_up)
    await wait_ready(api, load)

    clock.reset()
    plan = schedule(config.faults, config.duration, config.fault_window, config.seed, stack.brokers.count)
    parts.injector = injector = Injector(stack, supervisor, load, api, clock.now, config)
    faults = asyncio.create_task(injector.run(plan))
    parts.background.append(faults)
    await load.run(config.duration, config.rate, MODELS)
    report["load_seconds"] = round(clock.now(), 2)
    await faults
    await load.settle()

    ids = [c.prediction_id for c in load.accepted() if c.prediction_id is not None]
    drain_start = clock.now()
    deliveries = receiver.deliveries
    gets = await drain(api, ids, lambda: deliveries, clock.now, drain_start + config.drain)
    report["drain_seconds"] = round(clock.now() - drain_start, 2)
    await injector.recovered()
    ledger = verdict(ids, gets, receiver.deliveries)
    report.update(ledger.as_dict())
    report["terminal_statuses"] = dict(Counter(
        seen.status for seen in gets.values() if isinstance(seen, Outcome)))
    report["ok"] = ledger.lost == 0 and ledger.conflicts == 0 and not receiver.unverified


async def _when_ready(call: Callable[[], Awaitable[str]], timeout: float = READY_TIMEOUT) -> str:
    """Call until it succeeds (the API may still be starting), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def _error(report: dict[str, Any], exc: BaseException) -> None:
    report["error"] = "".join(traceback.format_exception_only(exc)).strip() or type(exc).__name__
    report["traceback"] = traceback.format_exc()[-4000:]


def _finish(report: dict[str, Any], parts: Parts) -> None:
    """Add what the processes, the load, the receiver and the faults saw, even after an error."""
    stack, load, receiver, injector = parts.stack, parts.load, parts.receiver, parts.injector
    if stack is None:
        return
    report["services"] = {name: s.summary() for name, s in stack.services.items()}
    report["broker_logs"] = [str(p) for p in stack.brokers.log_paths()]
    report["postgres_log"] = str(stack.postgres.log_path)
    if load is not None:
        report.update(load.summary())
    if receiver is not None:
        report["deliveries"] = receiver.summary()
    if injector is not None:
        report["faults"] = [record.as_dict() for record in injector.records]
    findings = [f"{name} died on its own {s['died_on_its_own']} times (exit codes "
                f"{sorted({d['exit_code'] for d in s['deaths']})})"
                for name, s in report["services"].items() if s["died_on_its_own"]]
    findings += [f"{f['label']} at {f['injected_at']}s did not recover within the probe's time"
                 for f in report.get("faults", []) if f.get("recovered_after") is None]
    findings += [f"{f['label']}: {f['error']}" for f in report.get("faults", []) if f.get("error")]
    if report.get("never_accepted"):
        findings.append(f"{report['never_accepted']} of {report['sent']} creates were never accepted "
                        f"(still refused or timing out {report['config']['create_give_up']:g}s after "
                        "they were due; not in the ledger)")
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["findings"] = findings

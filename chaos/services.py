"""The inferhook services of a chaos run as supervised subprocesses.

The harness kills and restarts them on purpose; a service that exits on its own is a finding
(services are meant to ride out outages), so the supervisor records it with its exit code and
the tail of its log, and starts it again so the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.infra.process import spawn

DEATH_LOG_TAIL = 2000
"""Characters of a service's log kept with each death it died on its own."""


@dataclass
class Death:
    """A service process that exited without the harness asking it to."""

    at: float
    """Seconds since the run's clock started."""
    exit_code: int
    log_tail: str


@dataclass
class Service:
    """`python -m cli <name> <args>`, restartable with the same environment and port."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    deaths: list[Death] = field(default_factory=list)
    busy: bool = False
    """Set while the harness itself kills or restarts it, so the supervisor keeps out."""
    final_exit_code: int | None = None
    """Its exit status when the harness stopped it at the end (SIGTERM: 0 is a clean exit)."""

    def start(self, note: str = "start") -> None:
        """Spawn the process (in its own session), appending to its log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            out.write(f"\n===== chaos: {note} at {time.strftime('%H:%M:%S')} =====\n")
        self.proc = spawn([sys.executable, "-m", "cli", self.name, *self.args],
                          log=self.log, env=self.env)
        self.starts += 1

    def exited(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    async def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL its whole process group and wait (bounded) until it is gone."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.kills += 1
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (drain), SIGKILL after `timeout`; keep the exit status."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.final_exit_code = self.proc.poll()

    def summary(self) -> dict[str, Any]:
        """What the report says about this service."""
        return {"starts": self.starts, "killed_by_harness": self.kills,
                "died_on_its_own": len(self.deaths),
                "deaths": [{"at": round(d.at, 2), "exit_code": d.exit_code, "log_tail": d.log_tail}
                           for d in self.deaths],
                "final_exit_code": self.final_exit_code, "log": str(self.log)}


class Supervisor:
    """Restarts services that exit on their own, recording each death; backs off (up to 5 s)
    while one keeps dying, e.g. because Kafka or PostgreSQL is down."""

    def __init__(self, services: dict[str, Service], clock: Callable[[], float]) -> None:
        self.services = services
        self.clock = clock
        self._restart_at: dict[str, float] = {}
        self._streak: dict[str, int] = {}

    async def watch(self, interval: float = 0.25) -> None:
        """Run until cancelled."""
        while True:
            now = time.monotonic()
            for service in self.services.values():
                if service.busy:
                    continue
                due = self._restart_at.get(service.name)
                if due is not None:
                    if now >= due:
                        del self._restart_at[service.name]
                        service.start(note="restart after it died on its own")
                    continue
                code = service.exited()
                if code is None:
                    continue
                tail = service.log.read_text(errors="replace")[-DEATH_LOG_TAIL:]
                service.deaths.append(Death(at=self.clock(), exit_code=code, log_tail=tail))
                streak = self._streak[service.name] = self._streak.get(service.name, 0) + 1
                self._restart_at[service.name] = now + min(0.5 * 2 ** (streak - 1), 5.0)
            await asyncio.sleep(interval)

    def harness_restarted(self, name: str) -> None:
        """A deliberate restart: forget the death streak and any restart pending."""
        self._restart_at.pop(name, None)
        self._streak[name] = 0

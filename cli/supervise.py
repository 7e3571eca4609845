"""Keeping service processes running: what exits is started again, with a backoff and a log line.

`inferhook up` runs the three services under a `Supervisor`; a chaos test may too. A
service that crashes (a bug, a kill) is restarted after `Backoff.delay(failures)`; one
that has run `healthy_after` seconds has its failure count reset, so a service that
crashes once a day restarts at once and one that crashes at start backs off to the cap.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cli.infra.process import terminate
from inferhook.resilience import Backoff

log = logging.getLogger(__name__)

RESTART = Backoff(first=1.0, factor=2.0, cap=30.0)
"""Waits before starting a crashed service again."""


@dataclass
class Service:
    """One process to keep running."""

    name: str
    args: list[str]
    """The command line."""
    env: dict[str, str] | None = None
    """Its environment (None: this process's)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    failures: int = 0
    """Exits in a row without a healthy run between them."""
    restart_at: float | None = None
    """When to start it again (monotonic), while it is down."""
    restarts: int = 0
    """How often it was started again (for tests and the exit summary)."""


class Supervisor:
    """Starts services, restarts any that exits, stops them all at the end."""

    def __init__(self, services: Sequence[Service], *, backoff: Backoff = RESTART,
                 healthy_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.services = {service.name: service for service in services}
        self.backoff, self.healthy_after, self.clock = backoff, healthy_after, clock

    def start(self) -> None:
        """Start every service not running yet."""
        for service in self.services.values():
            if service.process is None:
                self._spawn(service)

    def _spawn(self, service: Service) -> None:
        # Its own session: Ctrl-C in the terminal reaches the supervisor only, which then
        # stops the services in order.
        service.process = subprocess.Popen(service.args, env=service.env, start_new_session=True)
        service.started_at, service.restart_at = self.clock(), None

    def check(self) -> None:
        """Notice services that exited (schedule their restart) and restart those due."""
        now = self.clock()
        for service in self.services.values():
            proc = service.process
            if proc is not None and service.restart_at is None and proc.poll() is not None:
                ran = now - service.started_at
                service.failures = 1 if ran >= self.healthy_after else service.failures + 1
                delay = self.backoff.delay(service.failures)
                service.restart_at = now + delay
                log.warning("%s exited with code %s after %.0fs; restarting it in %.1fs",
                            service.name, proc.returncode, ran, delay)
            if service.restart_at is not None and now >= service.restart_at:
                service.restarts += 1
                log.info("starting %s again (restart %d)", service.name, service.restarts)
                self._spawn(service)

    def run(self, stopping: Callable[[], bool], *, interval: float = 0.3) -> None:
        """Check every `interval` seconds until `stopping()` is true."""
        while not stopping():
            self.check()
            time.sleep(interval)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every service: SIGTERM to its process group, SIGKILL after `timeout`."""
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                terminate(service.process.pid, timeout=timeout)
            if service.process is not None:
                service.process.wait()  # reap it


def stop_on_signals() -> Callable[[], bool]:
    """Catch SIGINT and SIGTERM from now on; the returned function says whether one came
    (a supervising loop's `stopping`, so it can stop its services in order)."""
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda number, _: caught.append(number))
    signal.signal(signal.SIGTERM, lambda number, _: caught.append(number))
    return lambda: bool(caught)

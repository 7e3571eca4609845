"""`inferhook supervise`: executor processes per model, started and stopped from the backlog.

Every `interval` seconds the supervisor reads each model's backlog from the executors
group (inferhook.groups), asks cli.scaling for the replicas it should have, and starts
(`inferhook executor <model>`, pooled: it loads its model on the first request) or
stops (SIGTERM: in-flight work drains, the partitions move on) the difference. A new
replica is the warm spare when one is ready: a process started beforehand with
`inferhook executor --standby`, its imports done, told its model on stdin, so scaling
from zero skips process start and imports (a new spare is started at once). While a
model's executors are started but none has joined the group yet, the requests waiting
for it are told `started`, phase `loading` (cli.loading), from the look that decided it:
a model at zero shows `loading` at once, never `pending` for seconds nor a 503. A
replica that exits on its own is counted out and started again when the rule still
wants it, after a backoff when it keeps crashing. Each decision that changes something
is logged and counted (`inferhook_scaling_decisions_total`); the replicas per model are
a gauge (`inferhook_executor_replicas`). Executors run in the supervisor's process
group, so stopping the group (as `inferhook up` does) stops them too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from cli.loading import LoadingNotices
from cli.scaling import Decision, Observed, ScalePolicy, decide
from cli.supervise import RESTART
from inferhook import metrics
from inferhook.catalog import load_catalog
from inferhook.groups import GroupWatch, ModelLoad
from inferhook.kafka import ensure_topics
from inferhook.resilience import Dependency, retrying
from inferhook.settings import Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

HEALTHY_AFTER = 30.0
"""A replica that ran this long before exiting resets its model's crash count."""


@dataclass
class ModelReplicas:
    """The executor processes of one model and what the rule needs to remember."""

    model: str
    policy: ScalePolicy
    running: list[tuple[subprocess.Popen[bytes], float]] = field(default_factory=list)
    """Processes serving, with when each started (monotonic)."""
    stopping: list[asyncio.Task[None]] = field(default_factory=list)
    previous_backlog: int | None = None
    busy_at: float = -math.inf
    """When the backlog was last above zero."""
    scaled_up_at: float = -math.inf
    crashes: int = 0
    not_before: float = -math.inf
    """No new replica before this (backoff after crashes)."""


class Autoscaler:
    """Scales the executors of every model of the catalog until stopped."""

    def __init__(self, settings: Settings, *, env: dict[str, str] | None = None,
                 interval: float = 1.0, spare: bool = True, tell_loading: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.env, self.interval, self.clock = settings, env, interval, clock
        self.keep_spare = spare
        """Keep one warm spare executor (imports done) for the next scale-up."""
        self.tell_loading = tell_loading
        """Tell requests waiting on a model being started `loading` (off: they show `pending`
        until an executor takes them; the scalezero benchmark's baseline)."""
        self._spare: subprocess.Popen[bytes] | None = None
        self.models = {name: ModelReplicas(name, ScalePolicy.of(entry.manifest))
                       for name, entry in load_catalog(settings.models_dir).items()}
        self.last: dict[str, ModelLoad] = {}
        """What the last look saw, by model."""
        self.notices: LoadingNotices | None = None
        """Tells waiting requests their model is loading (while `run` is connected)."""

    def replicas(self, model: str) -> int:
        """Executor processes serving `model` now (not counting those stopping)."""
        return len(self.models[model].running)

    async def run(self, stop: asyncio.Event) -> None:
        """Scale until `stop`; then stop every executor started here (they drain)."""
        try:
            self._refill_spare()
            await retrying("supervisor", lambda: self._watching(stop), stop=stop,
                           uses=(Dependency.KAFKA,))
        finally:
            if self._spare is not None:
                await self._retire_spare(self._spare)
            for state in self.models.values():
                while state.running:
                    self._stop_one(state, "supervisor stopping")
            await asyncio.gather(*(t for s in self.models.values() for t in s.stopping),
                                 return_exceptions=True)

    async def _watching(self, stop: asyncio.Event) -> None:
        topics = Topics(self.settings.kafka.topic_prefix)
        await ensure_topics(self.settings.kafka,
                            [t for m in self.models for t in topics.all_requests(m)])
        watch = GroupWatch(self.settings.kafka)
        notices = LoadingNotices(self.settings.kafka)
        await watch.start()
        try:
            await notices.start()
            self.notices = notices
            while not stop.is_set():
                self.last = await watch.read(self.models)
                for state in self.models.values():
                    load = self.last[state.model]
                    self.tick(state, load)
                    if self.tell_loading and starting(state, load):
                        await self._tell_loading(notices, state, load)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            self.notices = None
            await notices.close()
            await watch.close()

    async def _tell_loading(self, notices: LoadingNotices, state: ModelReplicas,
                            load: ModelLoad) -> None:
        told = await notices.announce(load.uncommitted)
        if told:
            log.info("%s is loading for %d waiting requests", state.model, len(told))

    def tick(self, state: ModelReplicas, load: ModelLoad) -> Decision:
        """Count out exited replicas, decide, and start or stop the difference."""
        now = self.clock()
        self._reap(state, now)
        if load.backlog > 0:
            state.busy_at = now
        replicas = len(state.running)
        decision = decide(state.policy, Observed(
            replicas=replicas, backlog=load.backlog, previous_backlog=state.previous_backlog,
            idle_for=now - state.busy_at, since_scale_up=now - state.scaled_up_at))
        state.previous_backlog = load.backlog
        direction = decision.direction(replicas)
        if direction == "up" and now >= state.not_before:
            log.info("scaling %s %d -> %d: %s", state.model, replicas, decision.target, decision.reason)
            metrics.SCALING_DECISIONS.labels(state.model, direction, decision.reason.split()[0]).inc()
            for _ in range(decision.target - replicas):
                self._start_one(state)
            state.scaled_up_at = now
        elif direction == "down":
            log.info("scaling %s %d -> %d: %s", state.model, replicas, decision.target, decision.reason)
            metrics.SCALING_DECISIONS.labels(state.model, direction, decision.reason.split()[0]).inc()
            for _ in range(replicas - decision.target):
                self._stop_one(state, decision.reason)
        metrics.EXECUTOR_REPLICAS.labels(state.model).set(len(state.running))
        metrics.QUEUE_BACKLOG.labels(state.model).set(load.backlog)
        return decision

    def _reap(self, state: ModelReplicas, now: float) -> None:
        for proc, started in list(state.running):
            if proc.poll() is None:
                continue
            state.running.remove((proc, started))
            ran = now - started
            state.crashes = 1 if ran >= HEALTHY_AFTER else state.crashes + 1
            state.not_before = now + RESTART.delay(state.crashes)
            log.warning("executor of %s (pid %d) exited with code %s after %.0fs",
                        state.model, proc.pid, proc.returncode, ran)

    def _spawn(self, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
        # Pooled: the model loads on the first request, which shows phase `loading`. No
        # metrics port of its own: the supervisor's would be taken twice.
        env = {**(os.environ if self.env is None else self.env),
               "INFERHOOK_EXECUTOR_MODE": "pooled", "INFERHOOK_METRICS_PORT": "0"}
        return subprocess.Popen([sys.executable, "-m", "cli", "executor", *args], env=env,
                                stdin=stdin)

    def _refill_spare(self) -> None:
        if self.keep_spare and (self._spare is None or self._spare.poll() is not None):
            self._spare = self._spawn("--standby", stdin=subprocess.PIPE)

    async def _retire_spare(self, spare: subprocess.Popen[bytes]) -> None:
        """An empty line: the spare exits without serving (killed if it does not)."""
        try:
            await asyncio.to_thread(spare.communicate, b"\n", 30)
        except (subprocess.TimeoutExpired, OSError):
            spare.kill()
            await asyncio.to_thread(spare.wait)

    def _start_one(self, state: ModelReplicas) -> None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            spare.stdin.write(f"{state.model}\n".encode())
            spare.stdin.close()
            proc, how = spare, "the warm spare"
        else:
            proc, how = self._spawn(state.model), "a new process"
        state.running.append((proc, self.clock()))
        log.info("started an executor of %s (pid %d, %s)", state.model, proc.pid, how)
        self._refill_spare()

    def _stop_one(self, state: ModelReplicas, reason: str) -> None:
        proc, _ = state.running.pop()  # the newest: the oldest has its model warm longest
        log.info("stopping the executor of %s (pid %d): %s", state.model, proc.pid, reason)
        task = asyncio.get_running_loop().create_task(self._terminate(proc))
        state.stopping.append(task)
        task.add_done_callback(state.stopping.remove)

    async def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, self.settings.executor.drain_seconds + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def starting(state: ModelReplicas, load: ModelLoad) -> bool:
    """True while `state`'s model has executors started here and none in the group yet, and
    requests wait for it: they wait for its model to load."""
    return bool(state.running) and load.executors == 0 and load.backlog > 0

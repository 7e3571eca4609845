"""How many executor processes a model should have: a pure rule over what the group shows.

The supervisor (cli.autoscale) observes each model's backlog, the records of its request
topic not yet committed by the executors group (waiting or running: an offset is
committed only once its outcome is durable), and asks `decide` for the number of
replicas, in this order:

1. fewer than `min_replicas` running: start up to it;
2. none running and a backlog: start one (scale from zero on the first request);
3. more than `max_replicas`: stop down to it;
4. a backlog above `backlog_per_replica` per replica and no scale-up in the last
   `up_cooldown` seconds (a new replica gets to load its model and take its share
   before the next is asked for): one more, up to `max_replicas`; a backlog that grew
   since the last look says so in the reason;
5. no backlog for `idle_seconds`: stop down to `min_replicas` (to zero by default);
6. otherwise keep what runs.

The clock is passed in as durations; nothing here reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.manifest import ModelManifest


@dataclass(frozen=True)
class ScalePolicy:
    """One model's scaling bounds (from its manifest) and the supervisor's tunables."""

    min_replicas: int = 0
    """Replicas kept even when idle."""
    max_replicas: int = 1
    """Replicas never exceeded."""
    idle_seconds: float = 300.0
    """Seconds without a backlog before scaling down to `min_replicas`."""
    backlog_per_replica: int = 8
    """Backlog each replica may hold before a growing backlog asks for another."""
    up_cooldown: float = 15.0
    """Seconds after a scale-up before the next one (the new replica loads meanwhile)."""

    @classmethod
    def of(cls, manifest: ModelManifest) -> ScalePolicy:
        """The policy a model's manifest asks for."""
        return cls(min_replicas=manifest.min_replicas,
                   max_replicas=max(manifest.max_replicas, manifest.min_replicas),
                   idle_seconds=manifest.idle_seconds)


@dataclass(frozen=True)
class Observed:
    """What the supervisor saw of one model."""

    replicas: int
    """Executor processes running for it now (not counting those stopping)."""
    backlog: int
    """Records of its request topic not committed by the executors group."""
    previous_backlog: int | None
    """The backlog at the previous look (None on the first)."""
    idle_for: float
    """Seconds since the backlog was last above zero."""
    since_scale_up: float
    """Seconds since the last scale-up of this model (infinity when none)."""


@dataclass(frozen=True)
class Decision:
    """How many replicas the model should have, and why (for the log and the metric)."""

    target: int
    reason: str

    def direction(self, replicas: int) -> str:
        """`up`, `down` or `hold` from `replicas`."""
        return "up" if self.target > replicas else "down" if self.target < replicas else "hold"


def decide(policy: ScalePolicy, seen: Observed) -> Decision:
    """The replicas `policy` wants for what was `seen` (rules in the module docstring)."""
    replicas, backlog = seen.replicas, seen.backlog
    if replicas < policy.min_replicas:
        return Decision(policy.min_replicas, "below min_replicas")
    if replicas == 0 and backlog > 0:
        return Decision(1, "a request arrived")
    if replicas > policy.max_replicas:
        return Decision(policy.max_replicas, "above max_replicas")
    if (backlog > policy.backlog_per_replica * replicas and replicas < policy.max_replicas
            and seen.since_scale_up >= policy.up_cooldown):
        growing = seen.previous_backlog is not None and backlog > seen.previous_backlog
        return Decision(replicas + 1, f"backlog {backlog} {'growing' if growing else 'over'} "
                                      f"{policy.backlog_per_replica} per replica")
    if backlog == 0 and seen.idle_for >= policy.idle_seconds and replicas > policy.min_replicas:
        return Decision(policy.min_replicas, f"idle for {seen.idle_for:.0f}s")
    return Decision(replicas, "steady")

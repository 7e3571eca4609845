"""CPU seconds of the stack's processes, read from /proc, and CPU per prediction from them.

A process's figure is the user + system time of it and of every process below it, live
(their own times) or exited (the cutime/cstime their parents collected), so PostgreSQL's
backends, including those that came and went in the window, count once each.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

CpuTimes = dict[str, float]
"""CPU seconds by process name (ingest, executor, dispatcher, kafka, postgres)."""


def tree_seconds(pid: int) -> float:
    """CPU seconds so far of pid and everything below it (from /proc/<pid>/stat)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # gone between the listing and the read
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def read(pids: dict[str, int]) -> CpuTimes:
    """CPU seconds so far of each named process tree."""
    return {name: tree_seconds(pid) for name, pid in pids.items()}


@dataclass(frozen=True)
class Window:
    """CPU seconds of each process over `seconds` of wall time."""

    before: CpuTimes
    after: CpuTimes
    seconds: float

    def used(self) -> CpuTimes:
        """CPU seconds each process used in the window."""
        return {name: self.after[name] - self.before[name] for name in self.before}

    def rates(self) -> CpuTimes:
        """CPU seconds per second of each process (an idle window gives the idle cost)."""
        return {name: used / self.seconds for name, used in self.used().items()}


def per_unit_ms(window: Window, idle_rates: CpuTimes, units: int) -> CpuTimes:
    """Milliseconds of CPU per unit (prediction) of each process, after taking off what it
    would have used idle over the same length of time; `all` is their sum. (Not clamped:
    a negative figure would say the idle cost was larger than the load's, i.e. noise.)"""
    if units <= 0:
        raise ValueError("no predictions to divide by")
    ms = {name: (used - idle_rates.get(name, 0.0) * window.seconds) * 1000 / units
          for name, used in window.used().items()}
    return {**ms, "all": sum(ms.values())}

"""Benchmark figures and the files they are written to (latest.json, latest.md).

Every figure is one `Result` with exactly the fields of issue 6: `name`, `unit`, `value`,
`baseline_name`, `baseline_value`, `ratio`, `goal`, `met`. A figure that could not be
measured has `value` None and `met` None; its reason goes into the notes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class GoalKind(StrEnum):
    """What a goal bounds: the ratio to the baseline or the value itself, from above or below."""

    RATIO_MIN = "ratio ≥"
    RATIO_MAX = "ratio ≤"
    VALUE_MIN = "≥"
    VALUE_MAX = "≤"


@dataclass(frozen=True)
class Goal:
    """A bound a figure should meet, e.g. Goal(GoalKind.RATIO_MIN, 0.6)."""

    kind: GoalKind
    bound: float

    def describe(self, unit: str) -> str:
        """The goal as people read it: `ratio ≥ 0.6` or `≤ 60 ms`."""
        if self.kind in (GoalKind.RATIO_MIN, GoalKind.RATIO_MAX):
            return f"{self.kind.value} {self.bound:.3g}"
        return f"{self.kind.value} {self.bound:,.6g} {unit}"

    def met(self, value: float, ratio: float | None) -> bool | None:
        """Whether the goal holds; None when the number it bounds is missing."""
        subject = ratio if self.kind in (GoalKind.RATIO_MIN, GoalKind.RATIO_MAX) else value
        if subject is None:
            return None
        if self.kind in (GoalKind.RATIO_MIN, GoalKind.VALUE_MIN):
            return subject >= self.bound
        return subject <= self.bound


@dataclass(frozen=True)
class Result:
    """One figure, in the exact shape of latest.json's entries."""

    name: str
    unit: str
    value: float | None
    baseline_name: str | None
    baseline_value: float | None
    ratio: float | None
    goal: str | None
    met: bool | None

    @classmethod
    def measure(cls, name: str, unit: str, value: float | None, *,
                baseline: tuple[str, float | None] | None = None,
                goal: Goal | None = None) -> Result:
        """A figure with its ratio (value / baseline) and whether its goal is met."""
        baseline_name, baseline_value = baseline if baseline is not None else (None, None)
        ratio = (value / baseline_value
                 if value is not None and baseline_value not in (None, 0) else None)
        return cls(
            name=name, unit=unit, value=_round(value), baseline_name=baseline_name,
            baseline_value=_round(baseline_value), ratio=_round(ratio),
            goal=goal.describe(unit) if goal else None,
            met=goal.met(value, ratio) if goal is not None and value is not None else None,
        )

    @classmethod
    def not_measured(cls, name: str, unit: str, *, baseline_name: str | None = None,
                     goal: Goal | None = None) -> Result:
        """A figure that this run could not produce (the notes say why)."""
        return cls(name=name, unit=unit, value=None, baseline_name=baseline_name,
                   baseline_value=None, ratio=None, goal=goal.describe(unit) if goal else None,
                   met=None)


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return float(f"{value:.4g}") if abs(value) < 1e5 else round(value)


def write_json(path: Path, machine: dict[str, Any], results: list[Result],
               notes: dict[str, str], run: dict[str, Any]) -> None:
    """latest.json: machine facts and run facts at the top, then one entry per figure."""
    document = {"machine": machine, "run": run, "results": [asdict(r) for r in results],
                "notes": notes}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown_table(results: list[Result]) -> str:
    """The figures as a Markdown table (also pasted into the README)."""
    lines = ["| figure | value | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in results:
        baseline = f"{_cell(r.baseline_value)} ({r.baseline_name})" if r.baseline_name else "—"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        value = "not measured" if r.value is None else f"{_cell(r.value)} {r.unit}"
        lines.append(f"| {r.name} | {value} | {baseline} | {_cell(r.ratio)} | {r.goal or '—'} "
                     f"| {met} |")
    return "\n".join(lines)


def write_markdown(path: Path, machine: dict[str, Any], results: list[Result],
                   notes: dict[str, str], run: dict[str, Any]) -> None:
    """latest.md: the machine in one paragraph, the table, then the notes."""
    facts = ", ".join(f"{k} {v}" for k, v in machine.items())
    load = run.get("load_average_1m", {})
    parts = [f"# inferhook benchmarks ({run.get('finished_at', '')})", "",
             f"Machine: {facts}.", "",
             f"Command: `{run.get('command', '')}`, {run.get('duration_s', 0):.0f} s; "
             f"1-minute load average {load.get('start')} at start, {load.get('end')} at end "
             f"(on {machine.get('cores')} cores: anything above that was other work).", "",
             markdown_table(results), ""]
    if notes:
        parts += ["## Notes", ""] + [f"- **{k}**: {v}" for k, v in notes.items()] + [""]
    path.write_text("\n".join(parts))

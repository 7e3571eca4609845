"""The live display of `inferhook predict --wait`: pending → loading → running → done."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from inferhook_client import Event, Prediction, Status
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text

STAGES = ("pending", "loading", "running", "done")
STYLE = {Status.SUCCEEDED: "bold green", Status.FAILED: "bold red", Status.CANCELED: "bold yellow"}
TIMINGS = (("queue", "queue_time"), ("load", "load_time"), ("predict", "predict_time"),
           ("total", "total_time"))


@dataclass
class ProgressState:
    """Where a prediction is, as its events tell it; fed event by event."""

    prediction_id: str
    model: str
    stage: str = "pending"
    outcome: Status | None = None
    entered: dict[str, float] = field(default_factory=dict)
    last_log: str = ""

    def __post_init__(self) -> None:
        self.entered["pending"] = time.monotonic()

    def apply(self, event: Event) -> None:
        """Move to the stage this event means."""
        if event.kind == "started":
            self._enter("loading" if event.data.get("phase") == "loading" else "running")
        elif event.kind == "logs":
            lines = str(event.data.get("logs", "")).strip().splitlines()
            self.last_log = lines[-1] if lines else self.last_log
        elif event.is_terminal and event.status is not None:
            self.outcome = event.status
            self._enter("done")

    def finish(self, prediction: Prediction) -> None:
        """Take the final state from the prediction itself (when the stream was not followed)."""
        if prediction.done:
            self.outcome = prediction.status
            self._enter("done")

    def _enter(self, stage: str) -> None:
        if STAGES.index(stage) >= STAGES.index(self.stage):
            self.stage = stage
            self.entered.setdefault(stage, time.monotonic())

    def render(self) -> RenderableType:
        """One line of stages, the current one marked, with the seconds spent so far."""
        line = Text()
        current = STAGES.index(self.stage)
        for index, stage in enumerate(STAGES):
            if index:
                line.append(" → ", style="dim")
            label = stage if stage != "done" or self.outcome is None else str(self.outcome)
            if index < current:
                skipped = stage == "loading" and stage not in self.entered
                line.append(label, style="dim strike" if skipped else "green")
            elif index == current:
                line.append(f"● {label}", style=STYLE.get(self.outcome, "bold cyan")
                            if self.outcome else "bold cyan")
            else:
                line.append(label, style="dim")
        line.append(f"   {time.monotonic() - self.entered['pending']:.1f}s", style="dim")
        parts: list[RenderableType] = [Text(f"{self.model}  {self.prediction_id}", style="bold"), line]
        if self.last_log:
            parts.append(Text(f"  {self.last_log}", style="dim"))
        return Group(*parts)


def timings(prediction: Prediction) -> Table:
    """queue / load / predict / total seconds from the prediction's metrics."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for label, _ in TIMINGS:
        table.add_column(label, justify="right")
    table.add_row(*(_seconds(prediction.metrics.get(key)) for _, key in TIMINGS))
    return table


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def show_result(console: Console, prediction: Prediction) -> None:
    """Status, timings, then the output (or the error) pretty-printed."""
    style = STYLE.get(prediction.status, "bold")
    console.print(Text(f"{prediction.status}", style=style),
                  Text(f" {prediction.model}  {prediction.id}"))
    if prediction.metrics:
        console.print(timings(prediction))
    if prediction.error is not None:
        console.print(Text(f"error: {prediction.error.reason}: {prediction.error.message}",
                           style="red"))
    if prediction.output is not None:
        console.print(Text("output:", style="bold"))
        console.print(JSON(json.dumps(prediction.output)))

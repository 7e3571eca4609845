"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.context import Plot


def draw(plot: Plot, folder: Path) -> Path:
    """Draw one plot as folder/<name>.png and return its path."""
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=90)
    for series in plot.series:
        axes.plot(series.x, series.y, marker="o" if len(series.x) <= 20 else None,
                  markersize=4, label=series.label)
    axes.set_title(plot.title)
    axes.set_xlabel(plot.xlabel)
    axes.set_ylabel(plot.ylabel)
    if plot.log_y:
        axes.set_yscale("log")
    if plot.log_x:
        axes.set_xscale("log")
    axes.grid(True, alpha=0.3)
    if len(plot.series) > 1:
        axes.legend()
    figure.tight_layout()
    path = folder / f"{plot.name}.png"
    figure.savefig(path)
    plt.close(figure)
    return path

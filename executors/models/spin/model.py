"""Handler for inferhook/spin: compute for about N milliseconds (diagnostics: cancel, deadlines, load)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

CALIBRATION_ITERATIONS = 200


def _spin(model: Any, iterations: int) -> float:
    clock = time.perf_counter()
    model.session.run(None, {"iterations": np.array(iterations, dtype=np.int64)})
    return time.perf_counter() - clock


def setup(model: Any) -> float:
    """Calibrate once at load: seconds one loop iteration takes on this machine."""
    _spin(model, 10)  # first run allocates
    best = min(_spin(model, CALIBRATION_ITERATIONS) for _ in range(3))
    return best / CALIBRATION_ITERATIONS


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Run the matmul loop for about input['milliseconds'] ms; stops early when terminated."""
    milliseconds = input.get("milliseconds")
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float) or milliseconds < 0:
        raise ValueError("'milliseconds' must be a non-negative number")
    iterations = max(1, round(milliseconds / 1000 / ctx.state))
    ctx.log(f"spinning {iterations} iterations for about {milliseconds:g} ms")
    clock = time.perf_counter()
    (checksum,) = ctx.run({"iterations": np.array(iterations, dtype=np.int64)})
    elapsed = (time.perf_counter() - clock) * 1000
    return {"milliseconds": milliseconds, "iterations": iterations,
            "elapsed_ms": round(elapsed, 3), "checksum": float(checksum)}

"""Small statistics helpers for latency samples (seconds in, milliseconds out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile_ms(samples: Sequence[float], q: float) -> float | None:
    """The q-th percentile of samples given in seconds, in milliseconds; None when empty."""
    if not samples:
        return None
    return float(np.percentile(np.asarray(samples, dtype=float), q)) * 1000.0


def rate(count: int, seconds: float) -> float | None:
    """count / seconds, None when nothing was timed."""
    return count / seconds if seconds > 0 and count > 0 else None

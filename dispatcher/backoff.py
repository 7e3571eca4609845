"""When to try a webhook delivery again: a pure function of the attempt number."""

from __future__ import annotations

import random
from collections.abc import Sequence


def retry_delay(attempts: int, schedule: Sequence[float], *, jitter: float = 0.1,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before the next attempt, or None when the schedule is used up.

    `attempts` counts attempts made so far (1 after the first). The delay is
    `schedule[attempts]` stretched or shrunk by up to `jitter` (a fraction), so a crowd of
    failures does not come back in step.
    """
    if attempts >= len(schedule):
        return None
    base = schedule[attempts]
    spread = base * jitter * (2 * (rng or random).random() - 1)
    return max(0.0, base + spread)

"""When to try a webhook delivery again: pure functions of the attempt and its outcome."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from schemas.webhooks import DeliveryState


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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Next:
    """What becomes of a delivery after one attempt."""

    state: DeliveryState
    delay: float = 0.0
    """When still pending: seconds until the next attempt."""
    endpoint_gone: bool = False
    """The endpoint answered 410: stop every pending delivery to it."""


def after_attempt(*, ok: bool, status: int | None, retry_after: float | None, attempts: int,
                  schedule: Sequence[float], max_retry_after: float,
                  rng: random.Random | None = None) -> Next:
    """The next step for a delivery whose attempt number `attempts` just ended.

    2xx delivers; 410 fails it and stops its endpoint; anything else (3xx included, never
    followed) is retried on the schedule with jitter, waiting at least what `Retry-After`
    asks, clamped to `max_retry_after`; when the schedule is used up it fails.
    """
    if ok:
        return Next(DeliveryState.DELIVERED)
    if status == 410:
        return Next(DeliveryState.FAILED, endpoint_gone=True)
    delay = retry_delay(attempts, schedule, rng=rng)
    if delay is None:
        return Next(DeliveryState.FAILED)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return Next(DeliveryState.PENDING, delay)

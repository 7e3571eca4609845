"""When a prediction's time is up, and what its outcome says: one rule for the executors
and the dispatcher's reaper.

Three clocks end a prediction that has not finished by itself:

| clock                                          | runs while          | outcome                     |
|------------------------------------------------|---------------------|-----------------------------|
| the create's deadline (`Cancel-After`)         | pending or started  | `canceled`, `deadline`      |
| the model's `queue_deadline_seconds`, from `created_at` | pending    | `failed`, `expired_in_queue`|
| the model's `max_run_seconds`, from the run's start | started        | `failed`, `timed_out`       |

The deadline is asked first: a prediction past both its deadline and its queue deadline
ends `canceled`. An executor applies the rule to the request in hand, before it starts
(`expired_before_start`) and with timers while it runs; the reaper applies it in SQL to
predictions whose executor is gone (the run time with a grace period added). Both word the
outcome with the functions below, so a client reads one message per reason whoever ended
the prediction. Pure functions, no clock of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.events import EventType, PredictionError
from schemas.status import FailureReason

_CANCELING = frozenset({FailureReason.CANCELED_BY_USER, FailureReason.DEADLINE})


def outcome_type(reason: FailureReason | None) -> EventType:
    """The outcome event a run ends with: `succeeded` without a reason, `canceled` for a
    cancel request or a passed deadline, `failed` for every other reason."""
    if reason is None:
        return EventType.SUCCEEDED
    return EventType.CANCELED if reason in _CANCELING else EventType.FAILED


def deadline_passed() -> PredictionError:
    """The create's deadline (`Cancel-After`) passed before the prediction finished."""
    return PredictionError(reason=FailureReason.DEADLINE,
                           message="the deadline set with Cancel-After passed before it finished")


def expired_in_queue(queue_deadline_seconds: float) -> PredictionError:
    """The prediction waited for an executor longer than its model's queue deadline."""
    return PredictionError(
        reason=FailureReason.EXPIRED_IN_QUEUE,
        message=f"waited in the queue longer than the model's queue deadline of {queue_deadline_seconds:g}s")


def timed_out(max_run_seconds: float, *, executor_gone: bool = False) -> PredictionError:
    """The run took longer than its model's maximum run time; `executor_gone` when the reaper
    ends it because no executor finished it."""
    message = f"ran longer than the model's maximum run time of {max_run_seconds:g}s"
    if executor_gone:
        message += "; its executor is gone"
    return PredictionError(reason=FailureReason.TIMED_OUT, message=message)


def expired_before_start(*, created_at: datetime, deadline: datetime | None,
                         queue_deadline_seconds: float, now: datetime) -> PredictionError | None:
    """Why a prediction taken from the queue at `now` must end without running, or None
    when it may run: its deadline has passed, or it waited longer than the queue deadline."""
    if deadline is not None and now >= deadline:
        return deadline_passed()
    if now > created_at + timedelta(seconds=queue_deadline_seconds):
        return expired_in_queue(queue_deadline_seconds)
    return None


def seconds_until(deadline: datetime, now: datetime) -> float:
    """Seconds from `now` until `deadline` (0 once it has passed): when to arm its timer."""
    return max(0.0, (deadline - now).total_seconds())
